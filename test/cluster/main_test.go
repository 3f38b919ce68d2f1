// Package cluster is the cluster end-to-end suite: one two-node
// Kubernetes cluster whose nodes run criserver (`make cluster NODES=2`),
// brought up once for all the tests and driven with kubectl, crictl and
// hack/cluster/cluster.sh; `make cluster-down` at the end, then a check
// that it left nothing on the host.
package cluster

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/criserver/criserver/test/e2e/framework"
)

const (
	// nodeCount is the size of the suite's cluster.
	nodeCount = 2
	// keepEnv=1 reuses a cluster that is already up and leaves it up,
	// for working on the tests: no leak check.
	keepEnv = "CRISERVER_CLUSTER_KEEP"
)

// suite is the cluster the tests share, set up by TestMain, or why there
// is none (every test then skips, or fails under CRISERVER_E2E_REQUIRED=1).
var suite struct {
	cluster  *Cluster
	archives []string // the test images, for reloading after image GC
	missing  string
}

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := framework.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir := os.Getenv("CLUSTER_DIR")
	if dir == "" {
		dir = "/var/lib/criserver-cluster"
	}
	c := newCluster(root, dir)
	if suite.missing = missingPrerequisite(c); suite.missing != "" {
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "criserver-cluster-images-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if suite.archives, err = imageArchives(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "test images:", err)
		return 1
	}

	keep := os.Getenv(keepEnv) == "1"
	before, err := snapshotHost(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "host state:", err)
		return 1
	}
	_, err = os.Stat(c.Kubeconfig)
	if err == nil && !keep {
		fmt.Fprintf(os.Stderr, "a cluster is already up in %s: `make cluster-down` first, or set %s=1 to reuse it\n", c.Dir, keepEnv)
		return 1
	}
	if err := c.up(root, err == nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if !keep { // cluster.sh takes a failed cluster down; this makes sure
			_ = c.down(root)
		}
		return 1
	}
	suite.cluster = c
	code := m.Run()
	if keep {
		return code
	}
	if err := c.down(root); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := checkHostClean(before, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

// missingPrerequisite says why the suite cannot run here, or "".
func missingPrerequisite(c *Cluster) string {
	if os.Geteuid() != 0 {
		return "the cluster suite needs root"
	}
	if _, err := os.Stat(c.Script); err != nil {
		return fmt.Sprintf("no cluster harness: %v", err)
	}
	for _, p := range []string{"make", "ip", "iptables-save", "/bin/busybox"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Sprintf("prerequisite %s: %v (run hack/install-deps.sh)", p, err)
		}
	}
	return ""
}

// cluster returns the suite's cluster, or skips t when there is none
// (fails it under CRISERVER_E2E_REQUIRED=1).
func cluster(t *testing.T) *Cluster {
	t.Helper()
	if suite.cluster == nil {
		reason := suite.missing
		if reason == "" {
			reason = "no cluster (see the suite's setup output)"
		}
		framework.Unsupported(t, "%s", reason)
	}
	return suite.cluster
}

// up brings the cluster up unless isUp, finds its nodes, lets pods run on
// the control plane and imports the images.
func (c *Cluster) up(root string, isUp bool) error {
	if !isUp {
		start := time.Now()
		if err := c.make(root, "cluster", fmt.Sprintf("NODES=%d", nodeCount)); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "cluster suite: %d nodes Ready in %s\n", nodeCount, time.Since(start).Round(time.Second))
	}
	var nodes struct{ Items []node }
	out, err := c.kubectlErr("get", "nodes", "-o", "json")
	if err == nil {
		err = json.Unmarshal([]byte(out), &nodes)
	}
	if err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	for _, n := range nodes.Items {
		c.Nodes = append(c.Nodes, n.Metadata.Name)
	}
	// kind's names: the control plane sorts before its workers.
	sort.Strings(c.Nodes)
	if len(c.Nodes) < 2 {
		return fmt.Errorf("the suite needs 2 nodes, the cluster has %v", c.Nodes)
	}
	// The tests place pods on both nodes.
	if _, err := c.kubectlErr("taint", "nodes", "--all", "node-role.kubernetes.io/control-plane:NoSchedule-"); err != nil &&
		!strings.Contains(err.Error(), "not found") {
		return err
	}
	start := time.Now()
	if err := c.loadImages(suite.archives); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "cluster suite: images imported in %s\n", time.Since(start).Round(time.Second))
	return nil
}

func (c *Cluster) down(root string) error {
	start := time.Now()
	err := c.make(root, "cluster-down")
	fmt.Fprintf(os.Stderr, "cluster suite: cluster down in %s\n", time.Since(start).Round(time.Second))
	return err
}

// make runs a target of the project's Makefile with the suite's CLUSTER_DIR.
func (c *Cluster) make(root string, args ...string) error {
	cmd := exec.Command("make", append([]string{"-C", root, "CLUSTER_DIR=" + c.Dir}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("make %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// checkHostClean compares the host with its state before the cluster.
func checkHostClean(before hostState, dir string) error {
	var left []string
	// Processes take a moment to be reaped after their kill.
	framework.Poll(10*time.Second, func() bool {
		after, err := snapshotHost(dir)
		if err != nil {
			left = []string{err.Error()}
			return false
		}
		left = before.leftovers(after)
		return len(left) == 0
	})
	if len(left) > 0 {
		return fmt.Errorf("make cluster-down left on the host:\n%s", strings.Join(left, "\n"))
	}
	fmt.Fprintln(os.Stderr, "cluster suite: make cluster-down left nothing on the host")
	return nil
}

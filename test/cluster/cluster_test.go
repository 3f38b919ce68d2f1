package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// callTimeout bounds every kubectl, crictl and cluster.sh call: a hung
// call fails its test instead of the whole run.
const callTimeout = 2 * time.Minute

// Cluster is the cluster the suite runs against: its directory, kubectl
// and admin kubeconfig, and hack/cluster/cluster.sh for node-level access.
type Cluster struct {
	Dir        string   // CLUSTER_DIR
	Kubectl    string   // $CLUSTER_DIR/bin/kubectl
	Kubeconfig string   // $CLUSTER_DIR/kubeconfig
	Script     string   // hack/cluster/cluster.sh
	Nodes      []string // control plane first
}

func newCluster(moduleRoot, dir string) *Cluster {
	return &Cluster{
		Dir:        dir,
		Kubectl:    filepath.Join(dir, "bin", "kubectl"),
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		Script:     filepath.Join(moduleRoot, "hack", "cluster", "cluster.sh"),
	}
}

// run runs a command with CLUSTER_DIR set and returns its stdout; the
// error carries stderr.
func (c *Cluster) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "CLUSTER_DIR="+c.Dir, "KUBECONFIG="+c.Kubeconfig)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out, nil
}

// kubectlErr runs kubectl with the admin kubeconfig.
func (c *Cluster) kubectlErr(args ...string) (string, error) {
	out, err := c.run(context.Background(), nil, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	return string(out), err
}

// kubectl runs kubectl and fails t when it fails.
func (c *Cluster) kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.kubectlErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kubectlCmd is a kubectl command for the caller to start and stop: the
// streaming commands (attach, logs -f, port-forward).
func (c *Cluster) kubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// apply creates or updates the objects of manifest (YAML) in namespace ns.
func (c *Cluster) apply(t testing.TB, ns, manifest string) {
	t.Helper()
	args := []string{"--kubeconfig", c.Kubeconfig, "apply", "-f", "-"}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	if _, err := c.run(context.Background(), []byte(manifest), c.Kubectl, args...); err != nil {
		t.Fatalf("%v\nmanifest:\n%s", err, manifest)
	}
}

// getJSON decodes `kubectl get ARGS -o json` into v.
func (c *Cluster) getJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := c.kubectl(t, append(append([]string{"get"}, args...), "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("kubectl get %s: %v", strings.Join(args, " "), err)
	}
}

// wait runs `kubectl wait` for condition on what (e.g. pod/x) in ns.
func (c *Cluster) wait(t testing.TB, ns, condition, what string, within time.Duration) {
	t.Helper()
	_, err := c.kubectlErr("wait", "-n", ns, "--for", condition, what, "--timeout", within.String())
	if err != nil {
		c.dump(t, ns)
		t.Fatalf("%s: %v", condition, err)
	}
}

// script runs hack/cluster/cluster.sh.
func (c *Cluster) script(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.run(context.Background(), nil, "bash", append([]string{c.Script}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// crictl runs crictl against node's criserver.
func (c *Cluster) crictl(t testing.TB, node string, args ...string) string {
	t.Helper()
	return c.script(t, append([]string{"crictl", node}, args...)...)
}

// nodeExecErr runs a command in node's network namespace.
func (c *Cluster) nodeExecErr(node string, cmd ...string) (string, error) {
	out, err := c.run(context.Background(), nil, "bash", append([]string{c.Script, "node-exec", node}, cmd...)...)
	return string(out), err
}

// nodeExec is nodeExecErr failing t on error.
func (c *Cluster) nodeExec(t testing.TB, node string, cmd ...string) string {
	t.Helper()
	out, err := c.nodeExecErr(node, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// restart restarts node's component (criserver or kubelet): SIGTERM, or
// SIGKILL when kill is set.
func (c *Cluster) restart(t testing.TB, node, component string, kill bool) {
	t.Helper()
	args := []string{"restart", node, component}
	if kill {
		args = append(args, "--kill")
	}
	c.script(t, args...)
	if component == "criserver" {
		retry(t, time.Minute, "criserver serving again on "+node, func() error {
			_, err := c.run(context.Background(), nil, "bash", c.Script, "crictl", node, "version")
			return err
		})
	}
}

// namespace creates a namespace for t, named after it, and deletes it
// when t ends (without waiting: the namespace controller finishes it). A
// failed test first logs what the namespace holds and its events.
func (c *Cluster) namespace(t testing.TB) string {
	t.Helper()
	ns := namespaceName(t.Name())
	c.kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() {
		if t.Failed() {
			c.dump(t, ns)
		}
		if _, err := c.kubectlErr("delete", "namespace", ns, "--wait=false", "--ignore-not-found"); err != nil {
			t.Logf("delete namespace: %v", err)
		}
	})
	return ns
}

var notDNSLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// namespaceName is a DNS label made from a test name plus a random suffix.
func namespaceName(test string) string {
	name := strings.Trim(notDNSLabel.ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(name) > 50 {
		name = strings.TrimRight(name[:50], "-")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return name + "-" + hex.EncodeToString(b)
}

// dump logs the pods and events of ns, for a failure's diagnosis.
func (c *Cluster) dump(t testing.TB, ns string) {
	t.Helper()
	for _, args := range [][]string{
		{"get", "pods", "-n", ns, "-o", "wide"},
		{"describe", "pods", "-n", ns},
		{"get", "events", "-n", ns, "--sort-by", ".lastTimestamp"},
	} {
		out, err := c.kubectlErr(args...)
		t.Logf("kubectl %s:\n%s%v", strings.Join(args, " "), out, errOrEmpty(err))
	}
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

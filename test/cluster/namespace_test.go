package cluster

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const namespacePods = `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: doomed}
spec:
  replicas: 2
  selector: {matchLabels: {app: doomed}}
  template:
    metadata: {labels: {app: doomed}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: doomed}}
      volumes:
      - {name: scratch, emptyDir: {}}
      - {name: config, configMap: {name: settings}}
      containers:
      - name: httpd
        image: $IMAGE
        imagePullPolicy: Never
        command: [httpd, -f, -p, "8080", -h, /www]
        ports: [{containerPort: 8080, hostPort: 18090}]
        volumeMounts: [{name: scratch, mountPath: /scratch}, {name: config, mountPath: /config}]
      - name: sleeper
        image: $IMAGE
        imagePullPolicy: Never
        command: [sleep, "3600"]
        volumeMounts: [{name: scratch, mountPath: /scratch}]
`

// Deleting a namespace removes all its pods from criserver on every node:
// no sandbox or container of the namespace is listed, and nothing of them
// is left on the host (mounts, processes, cgroups, files, IPAM
// allocations, iptables rules in the node's network namespace), the
// things the daemon's own leak checks count.
func TestNamespaceDeletionRemovesPods(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	ns := c.namespace(t)
	c.apply(t, ns, manifest(namespacePods))
	c.wait(t, ns, "condition=Available", "deployment/doomed", 2*time.Minute)

	var ids []string // sandbox and container IDs, pod UIDs
	nodes := map[string]bool{}
	for _, n := range c.Nodes {
		for _, p := range c.criPods(t, n, ns) {
			ids = append(ids, p.ID, p.Metadata.UID)
			nodes[n] = true
		}
		for _, ctr := range c.criContainers(t, n, ns) {
			ids = append(ids, ctr.ID)
		}
	}
	if len(nodes) != 2 || len(ids) != 2*(2+2) {
		t.Fatalf("want 2 pods of 2 containers, one pod per node; criserver has %v on %v", ids, nodes)
	}
	leftBefore := c.leftovers(t, ids)
	if len(leftBefore) == 0 {
		t.Fatal("the leak scan finds nothing of running pods: it would find nothing of removed ones either")
	}

	c.kubectl(t, "delete", "namespace", ns, "--timeout", "2m")
	// The kubelet removes dead sandboxes, containers and pod log
	// directories in its garbage collection, once a minute.
	retry(t, 3*time.Minute, "criserver's removal of the namespace's pods", func() error {
		for _, n := range c.Nodes {
			if pods, ctrs := c.criPods(t, n, ns), c.criContainers(t, n, ns); len(pods)+len(ctrs) > 0 {
				return fmt.Errorf("node %s still lists %d pods and %d containers", n, len(pods), len(ctrs))
			}
		}
		if left := c.leftovers(t, ids); len(left) > 0 {
			return fmt.Errorf("left on the host:\n%s", strings.Join(left, "\n"))
		}
		return nil
	})
}

// leftovers lists what on the host names one of ids: mounts, processes,
// cgroups, files under the cluster directory and the host's pod log and
// CNI directories, IPAM allocations, and iptables rules of each node.
func (c *Cluster) leftovers(t testing.TB, ids []string) []string {
	t.Helper()
	var left []string
	mentions := func(s string) bool {
		for _, id := range ids {
			if strings.Contains(s, id) {
				return true
			}
		}
		return false
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		if mentions(l) {
			left = append(left, "mount: "+l)
		}
	}
	for _, p := range clusterProcesses(c.Dir) {
		if mentions(p) {
			left = append(left, "process: "+p)
		}
	}
	for _, d := range cgroupDirs() {
		// cgroupfs names pod cgroups pod<uid>; systemd with _ for -.
		if mentions(d) || mentions(strings.ReplaceAll(d, "_", "-")) {
			left = append(left, "cgroup: "+d)
		}
	}
	for _, dir := range append([]string{c.Dir}, hostFileDirs...) {
		left = append(left, filesMentioning(dir, mentions)...)
	}
	for _, n := range c.Nodes {
		rules, err := c.nodeExecErr(n, "iptables-save")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(rules, "\n") {
			if mentions(l) {
				left = append(left, "iptables of "+n+": "+l)
			}
		}
	}
	return left
}

// filesMentioning lists the files below dir whose path names an ID, and
// the IPAM allocations (host-local's small files under networks/) that
// hold one. It does not descend into mount points: a pod's root
// filesystem is checked as a mount.
func filesMentioning(dir string, mentions func(string) bool) []string {
	var left []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if mentions(p) {
			left = append(left, "file: "+p)
		}
		switch {
		case d.IsDir() && p != dir && isMountPoint(p):
			return filepath.SkipDir
		case d.Type().IsRegular() && strings.Contains(p, "/networks/"):
			if b, err := os.ReadFile(p); err == nil && len(b) < 4096 && mentions(string(b)) {
				left = append(left, "IPAM allocation: "+p)
			}
		}
		return nil
	})
	return left
}

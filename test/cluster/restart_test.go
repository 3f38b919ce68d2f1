package cluster

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// The restart tests do not call t.Parallel: they restart a node's
// criserver or kubelet, which the other tests must not see. Go runs them
// first, before the parallel tests start.

const restartPods = `
apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: $NODE}
  containers:
  - name: main
    image: $IMAGE
    imagePullPolicy: Never
    command: [sh, -c, "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]
    livenessProbe:
      exec: {command: ["true"]}
      periodSeconds: 2
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: $NODE}
  containers:
  - name: web
    image: $IMAGE
    imagePullPolicy: Never
    command: [httpd, -f, -p, "8080", -h, /www]
  - name: side
    image: $IMAGE
    imagePullPolicy: Never
    command: [sleep, "3600"]
`

// settleTime is how long a test watches pods after a restart for the
// kubelet to restart or duplicate any: several PLEG relists (1 s), runtime
// status checks (5 s) and node status updates (10 s).
const settleTime = 15 * time.Second

// podsState is what must not change across a restart: per pod, its UID,
// its containers' IDs and restart counts; per node, its sandboxes and
// containers as criserver lists them.
type podsState struct {
	pods     map[string]string // pod name → UID and containers
	sandbox  []string          // criserver's sandbox IDs with their pod UIDs
	ctrs     []string          // criserver's container IDs with names and attempts
	nodeName string
}

func (c *Cluster) podsState(t testing.TB, ns, nodeName string) podsState {
	t.Helper()
	s := podsState{pods: map[string]string{}, nodeName: nodeName}
	for _, p := range c.pods(t, ns, "") {
		var b strings.Builder
		fmt.Fprintf(&b, "uid %s ready %v", p.Metadata.UID, conditionOf(p.Status.Conditions, "Ready").Status)
		for _, cs := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, "; %s %s restarts %d", cs.Name, cs.ID(), cs.RestartCount)
		}
		s.pods[p.Metadata.Name] = b.String()
	}
	for _, p := range c.criPods(t, nodeName, ns) {
		s.sandbox = append(s.sandbox, fmt.Sprintf("%s %s/%s attempt %d %s", p.ID, p.Metadata.Name, p.Metadata.UID, p.Metadata.Attempt, p.State))
	}
	for _, ctr := range c.criContainers(t, nodeName, ns) {
		s.ctrs = append(s.ctrs, fmt.Sprintf("%s %s attempt %d in %s %s", ctr.ID, ctr.Metadata.Name, ctr.Metadata.Attempt, ctr.PodSandboxID, ctr.State))
	}
	sort.Strings(s.sandbox)
	sort.Strings(s.ctrs)
	return s
}

// startRestartPods runs restartPods on the worker and returns its state.
func (c *Cluster) startRestartPods(t *testing.T) (ns, nodeName string, before podsState) {
	t.Helper()
	ns, nodeName = c.namespace(t), c.Nodes[1]
	c.apply(t, ns, manifest(restartPods, "NODE", nodeName))
	c.wait(t, ns, "condition=Ready", "pod/a", 2*time.Minute)
	c.wait(t, ns, "condition=Ready", "pod/b", 2*time.Minute)
	before = c.podsState(t, ns, nodeName)
	if len(before.sandbox) != 2 || len(before.ctrs) != 3 {
		t.Fatalf("criserver lists %v and %v, want 2 pods and 3 containers", before.sandbox, before.ctrs)
	}
	return ns, nodeName, before
}

// checkUnchanged watches the pods for settleTime: any change (a restart,
// a new container, a second sandbox, a pod not ready) fails t.
func (c *Cluster) checkUnchanged(t *testing.T, ns string, before podsState) {
	t.Helper()
	deadline := time.Now().Add(settleTime)
	for time.Now().Before(deadline) {
		if now := c.podsState(t, ns, before.nodeName); !reflect.DeepEqual(now, before) {
			t.Fatalf("pods changed:\nbefore %+v\nnow    %+v", before, now)
		}
		time.Sleep(time.Second)
	}
}

// checkStreams checks that exec and logs work, and that the log still
// grows: conmon kept writing it.
func (c *Cluster) checkStreams(t *testing.T, ns string) {
	t.Helper()
	if got := c.exec(t, ns, "b", "side", "echo", "still here"); got != "still here\n" {
		t.Errorf("exec: %q", got)
	}
	lines := func() int { return strings.Count(c.kubectl(t, "logs", "-n", ns, "a"), "\n") }
	n := lines()
	if !strings.HasPrefix(c.kubectl(t, "logs", "-n", ns, "a"), "tick 0\n") {
		t.Error("the log lost its first lines")
	}
	retry(t, 10*time.Second, "new log lines", func() error {
		if m := lines(); m <= n {
			return fmt.Errorf("%d lines, no more than before", m)
		}
		return nil
	})
}

// Restarting a node's criserver, gracefully or by SIGKILL, while pods run
// leaves the node Ready and the pods as they were: same sandboxes, same
// containers, no restart, no duplicate; exec and logs still work.
func TestRuntimeRestart(t *testing.T) {
	c := cluster(t)
	ns, nodeName, before := c.startRestartPods(t)
	for _, tc := range []struct {
		name string
		kill bool
	}{{"SIGTERM", false}, {"SIGKILL", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ready := conditionOf(c.getNode(t, nodeName).Status.Conditions, "Ready")
			c.restart(t, nodeName, "criserver", tc.kill)
			c.checkUnchanged(t, ns, before)
			if now := conditionOf(c.getNode(t, nodeName).Status.Conditions, "Ready"); now != ready {
				t.Errorf("node Ready condition went from %+v to %+v", ready, now)
			}
			c.checkStreams(t, ns)
		})
	}
}

// Restarting a node's kubelet: it adopts the running pods without
// restarting them, and still manages them (deleting one stops its sandbox
// and containers in criserver).
func TestKubeletRestart(t *testing.T) {
	c := cluster(t)
	ns, nodeName, before := c.startRestartPods(t)
	c.restart(t, nodeName, "kubelet", false)
	c.wait(t, "default", "condition=Ready", "node/"+nodeName, time.Minute)
	c.checkUnchanged(t, ns, before)
	c.checkStreams(t, ns)

	// Deleting a pod makes the kubelet stop its sandbox and containers
	// (removing them waits for its garbage collection).
	uid := c.getPod(t, ns, "b").Metadata.UID
	c.kubectl(t, "delete", "pod", "-n", ns, "b", "--timeout", "1m")
	retry(t, time.Minute, "the kubelet's stop of the deleted pod", func() error {
		deletedPod := map[string]bool{} // sandbox ID → of the deleted pod
		for _, p := range c.criPods(t, nodeName, ns) {
			if p.Metadata.UID == uid && p.State == "SANDBOX_READY" {
				return fmt.Errorf("sandbox %s of the deleted pod is still ready", p.ID)
			}
			deletedPod[p.ID] = p.Metadata.UID == uid
		}
		for _, ctr := range c.criContainers(t, nodeName, ns) {
			if deletedPod[ctr.PodSandboxID] && ctr.State == "CONTAINER_RUNNING" {
				return fmt.Errorf("container %s of the deleted pod still runs", ctr.ID)
			}
		}
		return nil
	})
}

package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/criserver/criserver/test/e2e/framework"
)

// imageGCSettings make the kubelet's image GC remove every unused image:
// any disk usage is over 1%, and the low threshold 0% leaves no unused
// image. The GC runs when the kubelet starts, then every 5 minutes; an
// image must have been known to the kubelet for imageMinimumGCAge (0 would
// mean the default, 2 minutes), so the run at start removes nothing and
// the next one does.
const imageGCSettings = `imageGCHighThresholdPercent: 1
imageGCLowThresholdPercent: 0
imageMinimumGCAge: 1s
`

// imageGCWithin is how long after the kubelet's start its second image GC
// runs (ImageGCPeriod, 5 minutes), with a margin.
const imageGCWithin = 6 * time.Minute

// imageGCDropIn is the name of the test's kubelet config drop-in.
const imageGCDropIn = "90-criserver-test-image-gc.conf"

const inUsePod = `
apiVersion: v1
kind: Pod
metadata: {name: user}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: $NODE}
  containers:
  - name: main
    image: $IMAGE
    imagePullPolicy: Never
    command: [sleep, "3600"]
`

// The kubelet's image GC removes an unused image through criserver
// (RemoveImage) and keeps the image a running container uses. The test
// gives the control plane node's kubelet settings that make its GC remove
// every unused image (configureKubelet), restarts it and waits for its
// next GC; then takes them away, restarts it again and imports the suite's
// images anew. It runs beside the other tests: those that exec into pods
// or watch restart counts place their pods on the worker, where this
// test's kubelet restarts cannot disturb them; the Deployment spread over
// both nodes waits out the readiness a restart resets.
func TestImageGC(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	ns := c.namespace(t)
	nodeName, other := c.Nodes[0], c.Nodes[1]
	c.apply(t, ns, manifest(inUsePod, "NODE", nodeName))
	c.wait(t, ns, "condition=Ready", "pod/user", 2*time.Minute)
	if !c.hasImage(t, nodeName, gcImage) {
		t.Fatalf("%s is not on %s before the GC", gcImage, nodeName)
	}

	restore := c.configureKubelet(t, nodeName, imageGCSettings)
	t.Cleanup(func() {
		restore()
		c.restart(t, nodeName, "kubelet", false)
		c.wait(t, "default", "condition=Ready", "node/"+nodeName, time.Minute)
		// The GC took the images no container used, the suite's among them.
		if err := c.loadImages(suite.archives); err != nil {
			t.Error(err)
		}
	})
	c.restart(t, nodeName, "kubelet", false)
	retry(t, imageGCWithin, "the kubelet's removal of "+gcImage, func() error {
		if c.hasImage(t, nodeName, gcImage) {
			return fmt.Errorf("%s is still on %s", gcImage, nodeName)
		}
		return nil
	})
	if !c.hasImage(t, nodeName, busyboxImage) {
		t.Errorf("the GC removed %s, which a running container uses", busyboxImage)
	}
	if !c.hasImage(t, other, gcImage) {
		t.Errorf("%s went from %s too, whose kubelet kept its config", gcImage, other)
	}
}

// hasImage tells whether node's criserver has image ref.
func (c *Cluster) hasImage(t testing.TB, nodeName, ref string) bool {
	t.Helper()
	return strings.TrimSpace(c.crictl(t, nodeName, "images", "-q", ref)) != ""
}

// configureKubelet adds settings (KubeletConfiguration fields, YAML) to the
// configuration of node's kubelet, for its next start: a drop-in in its
// --config-dir when it has one, else appended to its --config file. The
// function it returns takes them away again.
func (c *Cluster) configureKubelet(t testing.TB, nodeName, settings string) (restore func()) {
	t.Helper()
	args, cwd := c.kubeletArgs(t, nodeName)
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cwd, p) // the kubelet resolves it so
	}
	if dir := flagValue(args, "--config-dir"); dir != "" {
		dropIn := filepath.Join(abs(dir), imageGCDropIn)
		body := "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n" + settings
		if err := os.WriteFile(dropIn, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.Remove(dropIn); err != nil {
				t.Errorf("remove the kubelet drop-in: %v", err)
			}
		}
	}
	file := flagValue(args, "--config")
	if file == "" {
		t.Fatalf("the kubelet of %s has neither --config-dir nor --config: %q", nodeName, args)
	}
	file = abs(file)
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Top-level keys: appended, they extend the YAML document.
	if err := os.WriteFile(file, append(append(orig, '\n'), settings...), 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.WriteFile(file, orig, 0o644); err != nil {
			t.Errorf("restore %s: %v", file, err)
		}
	}
}

// kubeletArgs are the command line and working directory of node's
// kubelet: the kubelet process in the node's network namespace.
func (c *Cluster) kubeletArgs(t testing.TB, nodeName string) (args []string, cwd string) {
	t.Helper()
	netns := strings.TrimSpace(c.nodeExec(t, nodeName, "readlink", "/proc/self/ns/net"))
	for _, pid := range framework.ProcessesNamed("kubelet") {
		proc := "/proc/" + strconv.Itoa(pid)
		if ns, err := os.Readlink(proc + "/ns/net"); err != nil || ns != netns {
			continue
		}
		cmdline, err1 := os.ReadFile(proc + "/cmdline")
		cwd, err2 := os.Readlink(proc + "/cwd")
		if err1 != nil || err2 != nil {
			t.Fatalf("kubelet %d: %v %v", pid, err1, err2)
		}
		return strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), cwd
	}
	t.Fatalf("no kubelet process in the network namespace of %s (%s)", nodeName, netns)
	return nil, ""
}

// flagValue is the value of flag name in args (--name=v or --name v).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

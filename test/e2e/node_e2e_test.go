package e2e

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/criserver/criserver/test/e2e/framework"
)

// nodeE2ESkips are the [NodeConformance] specs this host can never run,
// by a regular expression on the spec text, with the reason.
var nodeE2ESkips = []critestSkip{
	{spec: `should be able to pull from private registry with secret`, reason: "needs the credentials of an authenticated upstream registry"},
	{spec: `AppArmor`, reason: "the host has no AppArmor"},
	{spec: `SELinux|selinux`, reason: "the host has no SELinux"},
	{spec: `[Ss]ystemd`, reason: "systemd is not PID 1 here"},
	{spec: `PrivilegedPod .*should enable privileged commands`,
		reason: "it adds a dummy network link, and this host's kernel has no dummy driver (`ip link add x type dummy` fails on the host too: Unknown device type)"},
	{spec: `(ConfigMap|Secrets) should be consumable via the environment`,
		reason: "its variable names (data-1) are not shell names, and Debian 12's busybox 1.35 sh leaves such variables out of the environment of what it runs (env data-1=x busybox sh -c env prints none); upstream's busybox image keeps them"},
}

// nodeE2ELabels selects the conformance specs that may run on a shared
// node: not flaky, slow, serial or disruptive.
const nodeE2ELabels = `NodeConformance && !Flaky && !Slow && !Serial && !Disruptive`

// nodeE2ECIFocus is the subset CI runs: pod lifecycle, container runtime,
// probes, lifecycle hooks, security context, init containers, volumes,
// sysctls, logs and exec. NODE_E2E_FOCUS overrides it; NODE_E2E_FOCUS=all
// (make test-node-e2e FULL=1) runs every selected spec.
const nodeE2ECIFocus = `Container Runtime|Pods|Probing container|Container Lifecycle Hook|Security Context|InitContainer|EmptyDir|ConfigMap|Secrets|Downward API|Sysctls|Kubelet when scheduling|Container Runtime blackbox`

// nodeE2EProcs is how many ginkgo processes share the specs: most of a
// spec's time is spent waiting (probes, grace periods, restarts), so
// processes beyond the 2 cores still shorten the run; Kubernetes' own node
// conformance jobs run 8 on 2-core machines. NODE_E2E_PROCS overrides it.
const nodeE2EProcs = 4

// TestNodeE2E runs Kubernetes' node e2e suite (test/e2e_node) focused on
// [NodeConformance]: its own etcd and API server in process, and a real
// kubelet, against a criserver of its own. It runs when
// CRISERVER_NODE_E2E=1 (make test-node-e2e).
func TestNodeE2E(t *testing.T) {
	if os.Getenv("CRISERVER_NODE_E2E") != "1" {
		t.Skip("CRISERVER_NODE_E2E=1 runs it (make test-node-e2e)")
	}
	framework.Require(t)
	bins := nodeE2EBinaries(t)
	reg := framework.StartRegistry(t)
	pushNodeE2EImages(t, reg, critestCache(), bins)
	conf := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(conf, []byte(critestRegistriesConf(reg.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := framework.StartDaemon(t, framework.WithArgs("--registries-config", conf), framework.WithConfig(nodeE2EHandlers))
	runNodeE2E(t, bins, "unix://"+d.Socket, "criserver")
}

// nodeE2EHandlers adds the RuntimeClass handler that Kubernetes' e2e
// specs of RuntimeClass and PodOverhead expect a node to have
// (PreconfiguredRuntimeClassHandler), runc as in upstream CI.
const nodeE2EHandlers = `[runtime.handlers.test-handler]
runtime_path = "runc"
`

// TestNodeE2EContainerd runs the same specs against Debian's containerd,
// for the README's side-by-side table (make test-node-e2e RUNTIME=containerd).
func TestNodeE2EContainerd(t *testing.T) {
	if os.Getenv("CRISERVER_NODE_E2E") != "1" || os.Getenv("CRISERVER_CONTAINERD") != "1" {
		t.Skip("CRISERVER_NODE_E2E=1 CRISERVER_CONTAINERD=1 run it (make test-node-e2e RUNTIME=containerd)")
	}
	framework.Require(t)
	bins := nodeE2EBinaries(t)
	reg := framework.StartRegistry(t)
	pushNodeE2EImages(t, reg, critestCache(), bins)
	c := framework.StartContainerd(t, containerdMirrors(reg.Addr), nodeE2EPause)
	runNodeE2E(t, bins, "unix://"+c.Socket, "containerd")
}

// runNodeE2E runs the suite with its kubelet on the runtime at endpoint,
// whose process is named process, and fails for each failed spec. Results
// go to $NODE_E2E_RESULTS.
func runNodeE2E(t *testing.T, bins, endpoint, process string) {
	t.Helper()
	results := resultsDir(t, "NODE_E2E_RESULTS")
	host := kubeletHostState(t, kubeletRoot)
	t.Cleanup(func() { host.restore(t) })
	work := t.TempDir()
	if err := writeKubeletDropIn(work); err != nil {
		t.Fatal(err)
	}
	path, err := pathWithout(t, "systemd-run")
	if err != nil {
		t.Fatal(err)
	}
	focus := os.Getenv("NODE_E2E_FOCUS")
	if focus == "" {
		focus = nodeE2ECIFocus
	}
	procs := nodeE2EProcs
	if v := os.Getenv("NODE_E2E_PROCS"); v != "" {
		if procs, err = strconv.Atoi(v); err != nil || procs < 1 {
			t.Fatalf("NODE_E2E_PROCS=%q: want a positive number", v)
		}
	}
	// ginkgo runs a precompiled suite in the directory that holds it, the
	// framework writes kubelet.conf.d, kubeconfig and the kubelet's config
	// in its working directory and runs the kubelet from beside the suite:
	// both are linked from work.
	for _, b := range []string{"e2e_node.test", "kubelet"} {
		if err := os.Symlink(filepath.Join(bins, b), filepath.Join(work, b)); err != nil {
			t.Fatal(err)
		}
	}
	suite := filepath.Join(work, "e2e_node.test")
	ginkgoArgs := []string{
		"run", "--procs=" + strconv.Itoa(procs), "--no-color", "-v",
		// Relative: ginkgo writes the merged report beside the suite.
		"--json-report=node-e2e.json",
		"--label-filter=" + nodeE2ELabels,
		"--timeout=80m",
	}
	if focus != "all" {
		ginkgoArgs = append(ginkgoArgs, "--focus="+focus)
	}
	for _, s := range nodeE2ESkips {
		ginkgoArgs = append(ginkgoArgs, "--skip="+s.spec)
	}
	ginkgoArgs = append(ginkgoArgs, suite, "--",
		"--container-runtime-endpoint="+endpoint, "--image-service-endpoint="+endpoint,
		"--container-runtime-process-name="+process,
		"--prepull-images=false",
		"--report-dir="+results,
	)
	logf, err := os.Create(filepath.Join(results, "node-e2e.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(bins, "ginkgo"), ginkgoArgs...)
	cmd.Dir = work
	// systemd-run off PATH makes the framework run the kubelet directly
	// (systemd is not PID 1 here).
	cmd.Env = append(os.Environ(), "PATH="+path)
	cmd.Stdout, cmd.Stderr = logf, logf
	runErr := cmd.Run()
	t.Logf("node e2e took %v with %d processes", time.Since(start).Round(time.Second), procs)
	report := filepath.Join(results, "node-e2e.json")
	// work goes at cleanup; the report stays with the results.
	if data, err := os.ReadFile(filepath.Join(work, "node-e2e.json")); err == nil {
		if err := os.WriteFile(report, data, 0o644); err != nil {
			t.Errorf("keep the report: %v", err)
		}
	}

	counts, failed, err := readCritestReport(report)
	if err != nil {
		t.Fatalf("e2e_node.test (%v): %v; see %s", runErr, err, logf.Name())
	}
	t.Logf("node e2e on %s: %d passed, %d failed, %d skipped (log and report in %s)",
		process, counts["passed"], len(failed), counts["skipped"], results)
	for _, f := range failed {
		t.Errorf("node e2e spec failed: %s", f)
	}
	if runErr != nil && len(failed) == 0 {
		t.Errorf("e2e_node.test: %v; see %s", runErr, logf.Name())
	}
}

// kubeletRoot is the framework's kubelet root directory.
const kubeletRoot = "/var/lib/kubelet"

// kubeletHost is what the host had of a kubelet root directory before the
// run.
type kubeletHost struct {
	root                     string
	rootExisted, rootMounted bool
}

func kubeletHostState(t *testing.T, root string) kubeletHost {
	t.Helper()
	h := kubeletHost{root: root}
	if _, err := os.Stat(root); err == nil {
		h.rootExisted = true
	}
	mounts, err := framework.MountsUnder(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if m != root {
			t.Fatalf("%s has mounts before the run (%v): another kubelet is using it", root, mounts)
		}
		h.rootMounted = true
	}
	return h
}

// restore checks that the kubelet has stopped, then undoes what it leaves
// on the host: the volumes of pods it was still tearing down when the
// suite stopped it (the framework deletes each spec's namespace without
// waiting for its pods, so those of the last specs may still be
// terminating), the bind mount of its root directory on itself, and the
// directory. Any other mount under the root fails the test. Runs hold the
// e2e lock: no other kubelet runs meanwhile.
func (h kubeletHost) restore(t *testing.T) {
	t.Helper()
	if pids := framework.ProcessesNamed("kubelet"); len(pids) > 0 {
		t.Errorf("kubelet still running: pids %v", pids)
		return
	}
	mounts, err := framework.MountsUnder(h.root)
	if err != nil {
		t.Fatal(err)
	}
	// Deepest first.
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	rootMounted := false
	for _, m := range mounts {
		switch {
		case m == h.root:
			rootMounted = true
		case podVolume(h.root, m):
			t.Logf("the kubelet stopped before unmounting pod volume %s: unmounting it", m)
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", m, err)
				return
			}
		default:
			t.Errorf("mount left under %s: %s", h.root, m)
			return
		}
	}
	if rootMounted && !h.rootMounted {
		if err := syscall.Unmount(h.root, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", h.root, err)
			return
		}
	}
	if !h.rootExisted {
		if err := os.RemoveAll(h.root); err != nil {
			t.Errorf("remove %s: %v", h.root, err)
		}
	}
}

// podVolume reports whether mount is a volume (or a volume's subPath) of a
// pod of the kubelet whose root directory is root
// (root/pods/<uid>/volumes/..., root/pods/<uid>/volume-subpaths/...).
func podVolume(root, mount string) bool {
	rel, err := filepath.Rel(filepath.Join(root, "pods"), mount)
	if err != nil {
		return false
	}
	parts := strings.Split(rel, string(filepath.Separator))
	return len(parts) > 2 && parts[0] != ".." && (parts[1] == "volumes" || parts[1] == "volume-subpaths")
}

// nodeE2EBinaries is $NODE_E2E_DIR, or the directory hack/node-e2e/build.sh
// builds e2e_node.test, the kubelet, agnhost and the ginkgo CLI into (once per
// version).
func nodeE2EBinaries(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("NODE_E2E_DIR")
	if dir == "" {
		cmd := exec.Command("bash", "../../hack/node-e2e/build.sh")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("build node e2e binaries: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	for _, b := range []string{"e2e_node.test", "kubelet", "agnhost", "ginkgo", "localhost.crt", "localhost.key"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("node e2e binaries: %v", err)
		}
	}
	return dir
}

// kubeletDropIn lets the kubelet run on this cgroup v1 (hybrid) host,
// which it refuses by default since 1.35, and gives pods a resolv.conf
// whose only server is the pod's own loopback, so that no spec's name
// lookup reaches the host's resolvers.
const kubeletDropIn = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
resolvConf: %s
`

// writeKubeletDropIn adds the drop-in to the kubelet.conf.d directory the
// framework creates (and keeps) in its working directory, and the
// resolv.conf it names.
func writeKubeletDropIn(work string) error {
	dir := filepath.Join(work, "kubelet.conf.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	resolv := filepath.Join(work, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "90-criserver-e2e.conf"), fmt.Appendf(nil, kubeletDropIn, resolv), 0o644)
}

// pathWithout returns a PATH whose commands are those of the current PATH
// but name. /bin and /usr/bin are one directory on Debian, so the commands
// of a directory holding name are linked from a directory of their own.
func pathWithout(t *testing.T, name string) (string, error) {
	t.Helper()
	var dirs []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			dirs = append(dirs, dir)
			continue
		}
		shadow := filepath.Join(t.TempDir(), "bin")
		if err := os.Mkdir(shadow, 0o755); err != nil {
			return "", err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return "", err
		}
		for _, e := range entries {
			if e.Name() == name {
				continue
			}
			if err := os.Symlink(filepath.Join(dir, e.Name()), filepath.Join(shadow, e.Name())); err != nil {
				return "", err
			}
		}
		dirs = append(dirs, shadow)
	}
	return strings.Join(dirs, string(filepath.ListSeparator)), nil
}

// nodeE2EPause is the pause image of Kubernetes v1.37, the sandbox image of
// a runtime that needs one (containerd).
const (
	nodeE2EPauseTag = "3.10.2"
	nodeE2EPause    = "registry.k8s.io/pause:" + nodeE2EPauseTag
)

// pushNodeE2EImages builds the images the [NodeConformance] specs use
// (e2e_node.test --list-images), under their upstream names.
func pushNodeE2EImages(t *testing.T, reg *framework.Registry, cache, bins string) {
	t.Helper()
	const e2e = "registry.k8s.io/e2e-test-images/"
	imgs := []critestImage{
		{e2e + "busybox", []string{"1.37.0-2", "1.36.1-1"}, busybox},
		{e2e + "nginx", []string{"1.27.0-2", "1.28.0-2"}, nginxImage(80)},
		{e2e + "nonewprivs", []string{"1.4"}, nonewprivsImage},
		{e2e + "nonroot", []string{"1.5"}, nonrootImage},
		{e2e + "perl", []string{"5.26"}, perlImage},
		{e2e + "glibc-dns-testing", []string{"2.1.1"}, glibcDNSTestingImage},
		{e2e + "agnhost", []string{"2.66.1", "2.55"}, agnhostImage(bins)},
		{"registry.k8s.io/pause", []string{nodeE2EPauseTag}, pauseImage},
	}
	b := &critestBuilder{cache: cache, tmp: t.TempDir(), debs: map[string]string{}, bins: map[string][]byte{}}
	for _, ci := range imgs {
		img := ci.build(t, b)
		for _, tag := range ci.tags {
			reg.Push(t, ci.repo, tag, img)
		}
	}
}

// nonrootImage is test/images/nonroot: busybox running as user 1234.
func nonrootImage(t *testing.T, b *critestBuilder) *framework.Image {
	img := busybox(t, b)
	img.Config.User = "1234"
	return img
}

// perlImage is busybox plus Debian's perl-base.
func perlImage(t *testing.T, b *critestBuilder) *framework.Image {
	entries, err := framework.DirEntries(b.debianRoot(t, "perl-base"))
	if err != nil {
		t.Fatal(err)
	}
	img := busybox(t, b)
	img.AddLayer(entries...)
	return img
}

// glibcDNSTestingImage is test/images/glibc-dns-testing as the
// hostnameOverride specs use it (hostname and hostname -f, resolved by
// glibc): busybox with Debian's hostname program and, as Debian's base
// image has it, an nsswitch.conf that reads /etc/hosts before asking DNS,
// so a name the kubelet wrote there is never sent to a resolver.
func glibcDNSTestingImage(t *testing.T, b *critestBuilder) *framework.Image {
	img := busybox(t, b)
	img.AddLayer(b.commandsLayer(t, []string{"hostname"}, "bin/hostname")...)
	img.AddLayer(framework.File("etc/nsswitch.conf", "hosts: files dns\n", 0o644))
	return img
}

// agnhostImage is test/images/agnhost: busybox and Debian's curl, bash
// and OpenBSD nc, plus the agnhost binary built from the Kubernetes module and the porter's
// test certificate, its user and group 1000/50000, and /agnhost pause as
// the default command.
func agnhostImage(bins string) func(*testing.T, *critestBuilder) *framework.Image {
	return func(t *testing.T, b *critestBuilder) *framework.Image {
		files := map[string][]byte{}
		for _, f := range []string{"agnhost", "localhost.crt", "localhost.key"} {
			data, err := os.ReadFile(filepath.Join(bins, f))
			if err != nil {
				t.Fatal(err)
			}
			files[f] = data
		}
		img := busybox(t, b)
		// As upstream's image has them: hooks and probes run curl, some
		// specs run their script with /bin/bash, and the networking specs
		// run nc -u, which Debian's busybox nc lacks.
		img.AddLayer(b.commandsLayer(t, []string{"curl", "bash", "netcat-openbsd"}, "usr/bin/curl", "bin/bash", "bin/nc.openbsd")...)
		img.AddLayer(framework.Symlink("bin/nc", "nc.openbsd"))
		img.AddLayer(
			framework.Entry{Name: "agnhost", Type: tar.TypeReg, Mode: 0o755, Body: files["agnhost"]},
			framework.Entry{Name: "localhost.crt", Type: tar.TypeReg, Mode: 0o644, Body: files["localhost.crt"]},
			framework.Entry{Name: "localhost.key", Type: tar.TypeReg, Mode: 0o644, Body: files["localhost.key"]},
			framework.Symlink("agnhost-2", "agnhost"),
			framework.Dir("uploads", 0o755),
			framework.File("etc/passwd", critestPasswd+"user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n", 0o644),
			framework.File("etc/group", critestGroup+"user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n", 0o644),
		)
		img.Config.Entrypoint = []string{"/agnhost"}
		img.Config.Cmd = []string{"pause"}
		return img
	}
}

func TestPodVolume(t *testing.T) {
	for _, tc := range []struct {
		mount string
		want  bool
	}{
		{"/var/lib/kubelet/pods/e2aa/volumes/kubernetes.io~secret/a", true},
		{"/var/lib/kubelet/pods/e2aa/volume-subpaths/v/c/0", true},
		{"/var/lib/kubelet/pods/e2aa/volumes", false},
		{"/var/lib/kubelet/plugins/x/volumes/y", false},
		{"/var/lib/kubelet", false},
		{"/var/lib/other/pods/e2aa/volumes/v", false},
	} {
		if got := podVolume("/var/lib/kubelet", tc.mount); got != tc.want {
			t.Errorf("podVolume(%q) = %v, want %v", tc.mount, got, tc.want)
		}
	}
}

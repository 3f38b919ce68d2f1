package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/criserver/criserver/cgroups"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// busyboxRootfs builds a minimal rootfs around the host's static busybox.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("no busybox on this host")
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "ro", "rw", "home/alice"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "id", "cat", "ls", "touch", "hostname", "grep", "echo", "mount", "unshare"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// testNetNS creates a named network namespace for the test and removes it after.
func testNetNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("crispec-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// removeCgroupParent removes the test's parent cgroup from every hierarchy.
func removeCgroupParent(t *testing.T, parent string) {
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", parent))
		if d := filepath.Join("/sys/fs/cgroup", parent); dirExists(d) {
			dirs = append(dirs, d)
		}
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	})
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// capMask is the /proc/<pid>/status hex form of a capability set.
func capMask(caps []string) string {
	var m uint64
	for i, c := range allCapabilities {
		if contains(caps, c) {
			m |= 1 << uint(i)
		}
	}
	return fmt.Sprintf("%016x", m)
}

// TestSpecRunsWithRuntimes proves generated specs are accepted by the
// installed runtimes: it runs busybox with each and checks, from inside,
// the identity, capabilities, seccomp, no_new_privs, mounts, hostname,
// memory limit and oom_score_adj the spec asked for.
func TestSpecRunsWithRuntimes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if testing.Short() {
		t.Skip("runs containers")
	}
	for _, rt := range []string{"runc", "crun"} {
		path, err := exec.LookPath(rt)
		if err != nil {
			t.Logf("%s not installed", rt)
			continue
		}
		t.Run(rt, func(t *testing.T) {
			f, err := ProbeFeatures(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			rro := f.RecursiveReadOnly
			t.Logf("%s: recursive read-only mounts supported: %v", rt, rro)
			t.Run("unprivileged", func(t *testing.T) { runUnprivileged(t, path, rro) })
			t.Run("privileged", func(t *testing.T) { runPrivileged(t, path) })
			t.Run("pod namespaces", func(t *testing.T) { runInPodNamespaces(t, path) })
		})
	}
}

func runInput(t *testing.T) (SpecInput, string) {
	t.Helper()
	rootfs := busyboxRootfs(t)
	podDir := t.TempDir()
	files := map[string]string{"hosts": "127.0.0.1 localhost spec-pod\n", "resolv.conf": "nameserver 127.0.0.53\n", "hostname": "spec-pod\n"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(podDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parent := fmt.Sprintf("/criserver-spectest-%d", os.Getpid())
	removeCgroupParent(t, parent)
	id := fmt.Sprintf("spectest-%d", time.Now().UnixNano())
	return SpecInput{
		ContainerID: id,
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "spec"},
			Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{}},
		},
		Sandbox: SandboxInfo{
			ID: "specpod", Hostname: "spec-pod", NetNSPath: testNetNS(t), HostIPC: true,
			HostsPath: filepath.Join(podDir, "hosts"), ResolvConfPath: filepath.Join(podDir, "resolv.conf"),
			HostnamePath: filepath.Join(podDir, "hostname"), CgroupParent: parent,
		},
		Image:        ocispec.Image{Config: ocispec.ImageConfig{Env: []string{"FROM_IMAGE=1"}}},
		ImageRootfs:  rootfs,
		CgroupDriver: cgroups.Cgroupfs,
	}, id
}

func runUnprivileged(t *testing.T, runtimePath string, rro bool) {
	in, id := runInput(t)
	roDir, rwDir := t.TempDir(), t.TempDir()
	sc := in.Config.Linux.SecurityContext
	sc.RunAsUser = i64(1000)
	sc.SupplementalGroups = []int64{4000}
	sc.NoNewPrivs = true
	sc.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	sc.Capabilities = &runtime.Capability{DropCapabilities: []string{"NET_RAW"}, AddCapabilities: []string{"SYS_TIME"},
		AddAmbientCapabilities: []string{"NET_BIND_SERVICE"}}
	in.Config.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512, OomScoreAdj: -500,
		HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 0}}}
	in.RecursiveReadOnly = rro
	in.Config.Mounts = []*runtime.Mount{
		{HostPath: roDir, ContainerPath: "/ro", Readonly: true, RecursiveReadOnly: rro},
		{HostPath: rwDir, ContainerPath: "/rw"},
	}
	// A submount under the read-only mount: "rro" must make it read-only
	// too, where plain "ro" leaves it writable.
	sub := filepath.Join(roDir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "mode=0777"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	if err := os.Chmod(rwDir, 0o777); err != nil {
		t.Fatal(err)
	}
	in.Config.Envs = []*runtime.KeyValue{kv("FROM_CRI", "2")}
	in.Config.Command = []string{"/bin/sh", "-c", `id; cat /proc/self/status; echo "env=$FROM_IMAGE$FROM_CRI home=$HOME"
touch /ro/x 2>/dev/null && echo RO-WRITABLE || echo RO-OK
touch /ro/sub/x 2>/dev/null && echo SUB-WRITABLE || echo SUB-RO
touch /rw/x && echo RW-OK
unshare -U true 2>/dev/null && echo USERNS-ALLOWED || echo USERNS-DENIED
echo "hostname=$(hostname)"; grep spec-pod /etc/hosts
echo "oom=$(cat /proc/self/oom_score_adj)"
echo "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
cat /proc/kcore >/dev/null 2>&1; echo "kcore-bytes=$(cat /proc/kcore 2>/dev/null | wc -c 2>/dev/null)"`}
	res, err := GenerateSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	out, cgroups := runSpec(t, runtimePath, res, id)
	caps, _, _ := capabilitySet(sc.Capabilities, false, nil)
	for _, want := range []string{
		"uid=1000(alice) gid=1000(alice) groups=10(wheel),50(staff),1000(alice),4000",
		"CapBnd:\t" + capMask(caps),
		"NoNewPrivs:\t1",
		"Seccomp:\t2",
		"env=12 home=/home/alice",
		"RO-OK", "RW-OK",
		"USERNS-DENIED", // the RuntimeDefault seccomp profile refuses unshare without CAP_SYS_ADMIN
		"hostname=spec-pod", "127.0.0.1 localhost spec-pod",
		fmt.Sprintf("oom=%d", max(DetectHost().OOMScoreAdjMin, -500)),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	wantSub := "SUB-WRITABLE" // plain ro is not recursive
	if rro {
		wantSub = "SUB-RO"
	}
	if !strings.Contains(out, wantSub) {
		t.Errorf("recursive read-only %v: output lacks %q", rro, wantSub)
	}
	if want := "CapAmb:\t" + capMask([]string{"CAP_NET_BIND_SERVICE"}); !strings.Contains(out, want) {
		t.Errorf("output lacks %q", want)
	}
	if want := fmt.Sprintf("mem=%d", 64<<20); cgroups && !strings.Contains(out, want) {
		t.Errorf("output lacks %q", want)
	}
	if _, err := os.Stat(filepath.Join(rwDir, "x")); err != nil {
		t.Errorf("write through the rw mount not visible on the host: %v", err)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

func runPrivileged(t *testing.T, runtimePath string) {
	in, id := runInput(t)
	in.Config.Linux.SecurityContext.Privileged = true
	in.Config.Command = []string{"/bin/sh", "-c", `id; cat /proc/self/status; ls /dev/null /dev/zero >/dev/null && echo DEV-OK
mount | grep ' on /sys type sysfs (rw' >/dev/null && echo SYS-RW; true`}
	res, err := GenerateSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := runSpec(t, runtimePath, res, id)
	for _, want := range []string{"uid=0(root) gid=0(root)", "CapEff:\t" + capMask(DetectHost().Capabilities), "Seccomp:\t0", "DEV-OK", "SYS-RW"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// pinNamespaces makes UTS and IPC namespaces pinned by bind mounts (as
// the sandbox code pins a pod's) and a PID namespace held by a sleeper.
func pinNamespaces(t *testing.T) (uts, ipc, pid string) {
	t.Helper()
	dir := t.TempDir()
	uts, ipc = filepath.Join(dir, "uts"), filepath.Join(dir, "ipc")
	for _, f := range []string{uts, ipc} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("unshare", "--uts="+uts, "--ipc="+ipc, "hostname", "pinned-pod").CombinedOutput(); err != nil {
		t.Skipf("unshare: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = unix.Unmount(uts, unix.MNT_DETACH); _ = unix.Unmount(ipc, unix.MNT_DETACH) })
	sleeper := exec.Command("unshare", "--pid", "--fork", "--kill-child", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	// The forked child of unshare is the namespace's pid 1.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", sleeper.Process.Pid, sleeper.Process.Pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			return uts, ipc, "/proc/" + f[0] + "/ns/pid"
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("pid namespace holder did not start")
	return
}

// runInPodNamespaces joins pinned UTS, IPC and PID namespaces by path, as
// a container of a pod with a shared PID namespace does.
func runInPodNamespaces(t *testing.T, runtimePath string) {
	in, id := runInput(t)
	uts, ipc, pid := pinNamespaces(t)
	in.Sandbox.UTSNSPath, in.Sandbox.IPCNSPath, in.Sandbox.HostIPC, in.Sandbox.PIDNSPath = uts, ipc, false, pid
	in.Sandbox.Hostname = "pinned-pod"
	in.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}
	in.Config.Command = []string{"/bin/sh", "-c", `echo "hostname=$(hostname)"; ls /proc | grep -c '^[0-9]' ; cat /proc/1/cmdline; echo; ls -d /dev/shm && echo SHM-OK
unshare -U true 2>/dev/null && echo USERNS-ALLOWED || echo USERNS-DENIED`}
	res, err := GenerateSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := runSpec(t, runtimePath, res, id)
	for _, want := range []string{"hostname=pinned-pod", "sleep60", "SHM-OK", "USERNS-ALLOWED" /* no seccomp asked: unconfined */} {
		if !strings.Contains(strings.ReplaceAll(out, "\x00", ""), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// runSpec writes config.json into a bundle and runs it to completion. It
// reports whether cgroups were applied: crun 1.8 refuses hybrid hosts
// whose cgroup2 hierarchy holds a controller; it is retried with
// --cgroup-manager=disabled, and skipped when it still refuses.
func runSpec(t *testing.T, runtimePath string, res *Result, id string) (string, bool) {
	t.Helper()
	bundle, state := t.TempDir(), t.TempDir()
	b, err := json.MarshalIndent(res.Spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := res.MakeDirs(); err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := append([]string{"--root", state}, extra...)
		cmd := exec.CommandContext(ctx, runtimePath, append(args, "run", "--bundle", bundle, id)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		_ = exec.Command(runtimePath, "--root", state, "delete", "--force", id).Run()
		return stdout.String(), stderr.String(), err
	}
	stdout, stderr, err := run()
	cgroups := true
	if err != nil && strings.Contains(stderr, "hybrid mode not supported") {
		cgroups = false
		stdout, stderr, err = run("--cgroup-manager=disabled")
		if err != nil && strings.Contains(stderr, "hybrid mode not supported") {
			// crun 1.8 refuses any container on a hybrid host whose cgroup2
			// hierarchy holds a controller (hugetlb here), whatever the spec.
			t.Skipf("%s cannot run containers on this host: %s", runtimePath, strings.TrimSpace(stderr))
		}
	}
	if err != nil {
		t.Fatalf("%s run: %v\nstderr: %s\nstdout: %s\nspec: %s", runtimePath, err, stderr, stdout, b)
	}
	return stdout, cgroups
}

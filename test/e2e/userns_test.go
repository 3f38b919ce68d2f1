package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// usernsHostID is the host ID of root in the test pods' user namespace.
const usernsHostID = 200000

// newUsernsEnv is a ctrEnv whose default handler is runc: user-namespaced
// pods need a runtime that reports them, and Debian 12's crun 1.8.1, the
// default where it is installed, reports no features. It skips (or fails
// under CRISERVER_E2E_REQUIRED) when runc does not report them either.
func newUsernsEnv(t *testing.T) *ctrEnv {
	t.Helper()
	e := newCtrEnv(t, framework.WithConfig("[runtime]\ndefault_handler = \"runc\"\n"))
	requireUserNamespaces(t, e.d, "")
	return e
}

// requireUserNamespaces skips (or fails under CRISERVER_E2E_REQUIRED)
// unless the daemon's runtime handler ("" is the default) reports user
// namespace support.
func requireUserNamespaces(t *testing.T, d *framework.Daemon, handler string) {
	t.Helper()
	resp, err := d.Runtime.Status(framework.Ctx(t), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range resp.RuntimeHandlers {
		if h.Name == handler && h.GetFeatures().GetUserNamespaces() {
			return
		}
	}
	framework.Unsupported(t, "runtime handler %q does not support user namespaces (runc 1.2+ on Linux 5.19+; hack/install-deps.sh installs runc)", handler)
}

// runUsernsPod runs a pod in a user namespace of its own that maps 0 to
// usernsHostID, and returns a ctrEnv for it.
func (e *ctrEnv) runUsernsPod(t *testing.T, name string, network runtime.NamespaceMode) *ctrEnv {
	t.Helper()
	cf := e.d.PodConfig(t, name)
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: usernsHostID, Length: 65536}}
	cf.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{
		Network:       network,
		Pid:           runtime.NamespaceMode_CONTAINER,
		UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping},
	}
	if network != runtime.NamespaceMode_NODE {
		cf.Linux.Sysctls = map[string]string{"net.ipv4.ping_group_range": "0 1000"}
	}
	resp, err := e.d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: cf})
	if err != nil {
		t.Fatalf("RunPodSandbox with a user namespace: %v", err)
	}
	return &ctrEnv{d: e.d, reg: e.reg, image: e.image, pod: resp.PodSandboxId, podCf: cf}
}

// TestUserNamespacePod: a pod in a user namespace of its own, checked from
// inside and from the host: the mappings, owners through the id-mapped
// rootfs, volumes and the pod's files, the host uid its processes run as,
// what its root may not write, procMount Unmasked, a daemon restart, and
// nothing left after removal.
func TestUserNamespacePod(t *testing.T) {
	e := newUsernsEnv(t)
	ctx := framework.Ctx(t)
	ref, _ := e.pushVolumeImage(t)
	p := e.runUsernsPod(t, "userns", runtime.NamespaceMode_POD)

	mapped, plain := t.TempDir(), t.TempDir()
	for _, d := range []string{mapped, plain} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "rootfile"), []byte("host root's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: usernsHostID, Length: 65536}}
	cfg := p.config("main", `cat /proc/self/uid_map /proc/self/gid_map
echo "owners $(stat -c %u:%g / /etc/passwd /etc/hostname /etc/resolv.conf /etc/hosts /dev/shm /mapped/rootfile /plain/rootfile /vol/data/hello | tr '\n' ' ')"
touch /rootfs-new && echo ROOTFS-WRITE-OK
echo from-container > /mapped/new && echo MAPPED-WRITE-OK
echo x >> /plain/rootfile 2>/dev/null && echo PLAIN-WRITABLE || echo PLAIN-DENIED
touch /plain/new 2>/dev/null && echo PLAIN-DIR-WRITABLE || echo PLAIN-DIR-DENIED
echo "ping_group_range $(cat /proc/sys/net/ipv4/ping_group_range)"
echo DONE; exec sleep 600`)
	cfg.Mounts = []*runtime.Mount{
		{HostPath: mapped, ContainerPath: "/mapped", UidMappings: mapping, GidMappings: mapping},
		{HostPath: plain, ContainerPath: "/plain"},
		imageMount("/vol", ref, ""),
	}
	id := p.run(t, cfg)
	waitLog(t, p, "main", "DONE")
	out := strings.Join(p.logLines(t, "main"), "\n")
	t.Logf("container output:\n%s", out)
	for _, want := range []string{
		fmt.Sprintf("0 %d 65536", usernsHostID),
		// root inside owns its rootfs, the image's files, the pod's files
		// and the id-mapped volume; the plain volume's root file is
		// unmapped (nobody).
		"owners 0:0 0:0 0:0 0:0 0:0 0:0 0:0 65534:65534 0:0 ",
		"ROOTFS-WRITE-OK", "MAPPED-WRITE-OK", "PLAIN-DENIED", "PLAIN-DIR-DENIED",
		"ping_group_range 0\t1000",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("output lacks %q", want)
		}
	}

	// From the host: the process runs as the mapped uid, files it writes
	// belong to the mapped root, and the id-mapped volume's file is host
	// root's on disk.
	_, info := p.status(t, id)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
			for _, v := range f[1:] {
				if v != fmt.Sprint(usernsHostID) {
					t.Errorf("container process %s, want %d throughout", line, usernsHostID)
					break
				}
			}
		}
	}
	if owner := fileOwner(t, filepath.Join(e.d.Root, "overlay2", id, "diff", "rootfs-new")); owner != usernsHostID {
		t.Errorf("rootfs file written in the container is owned by host uid %d, want %d", owner, usernsHostID)
	}
	if owner := fileOwner(t, filepath.Join(mapped, "new")); owner != 0 {
		t.Errorf("file written through the id-mapped volume is owned by host uid %d, want 0", owner)
	}
	if b, _ := os.ReadFile(filepath.Join(plain, "rootfile")); string(b) != "host root's\n" {
		t.Errorf("root in the container changed a host file its uid may not write: %q", b)
	}

	// procMount Unmasked (empty masked and read-only lists): no /proc
	// path is masked or read-only.
	ucfg := p.config("unmasked", `grep -c " /proc/" /proc/mounts; echo DONE`)
	ucfg.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{MaskedPaths: []string{}, ReadonlyPaths: []string{}}
	uid := p.run(t, ucfg)
	p.waitExit(t, uid, 30*time.Second)
	if out := p.logLines(t, "unmasked"); len(out) < 1 || out[0] != "stdout F 0" {
		t.Errorf("mounts over /proc paths with procMount Unmasked: %v", out)
	}

	// A daemon restart keeps the pod, its user namespace and its container.
	e.d.Stop(t)
	e.d.Start(t)
	r, err := e.d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "cat /proc/self/uid_map; id -u; cat /vol/data/hello"}, Timeout: 10})
	if err != nil || r.ExitCode != 0 || !strings.Contains(strings.Join(strings.Fields(string(r.Stdout)), " "), fmt.Sprintf("0 %d 65536 0 hello from the image", usernsHostID)) {
		t.Errorf("exec after restart: %v code %d %q %q", err, r.GetExitCode(), r.GetStdout(), r.GetStderr())
	}
	ps, err := e.d.Runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: p.pod})
	if err != nil || ps.Status.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod after restart: %v %v", ps.GetStatus().GetState(), err)
	}

	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.pod}); err != nil {
		t.Fatal(err)
	}
	assertNoLeaks(t, e.d, p.pod, id, uid)
}

// TestUserNamespaceHostNetwork: a pod in a user namespace on the host's
// network (Status: user_namespaces_host_network) sees the host's
// interfaces and its /sys.
func TestUserNamespaceHostNetwork(t *testing.T) {
	e := newUsernsEnv(t)
	p := e.runUsernsPod(t, "usernshost", runtime.NamespaceMode_NODE)
	id := p.run(t, p.config("main", `cat /proc/self/uid_map; ls /sys/class/net | grep -qx lo && echo SYS-OK; ip link show lo >/dev/null && echo LO-OK`))
	if st := p.waitExit(t, id, 30*time.Second); st.ExitCode != 0 {
		t.Errorf("exit code %d", st.ExitCode)
	}
	out := strings.Join(strings.Fields(strings.Join(p.logLines(t, "main"), "\n")), " ")
	for _, want := range []string{fmt.Sprintf("0 %d 65536", usernsHostID), "SYS-OK", "LO-OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	ctx := framework.Ctx(t)
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.pod}); err != nil {
		t.Fatal(err)
	}
	assertNoLeaks(t, e.d, p.pod, id)
}

func fileOwner(t *testing.T, p string) uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid
}

// TestUserNamespaceRefusals: the modes and mappings the CRI says to refuse.
func TestUserNamespaceRefusals(t *testing.T) {
	d := framework.StartDaemon(t)
	m := func(ctr uint32) []*runtime.IDMapping {
		return []*runtime.IDMapping{{ContainerId: ctr, HostId: usernsHostID, Length: 65536}}
	}
	two := append(m(0), &runtime.IDMapping{ContainerId: 0, HostId: 2 * usernsHostID, Length: 65536})
	for _, tc := range []struct {
		name string
		u    *runtime.UserNamespace
	}{
		{"more than one mapping", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: two, Gids: two}},
		{"container ID 0 not mapped", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m(1), Gids: m(1)}},
		{"mode CONTAINER", &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}},
		{"mode TARGET", &runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := d.PodConfig(t, "refused")
			cf.Linux.SecurityContext.NamespaceOptions.UsernsOptions = tc.u
			if _, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: cf}); err == nil {
				t.Fatal("RunPodSandbox succeeded")
			}
			resp, err := d.Runtime.ListPodSandbox(framework.Ctx(t), &runtime.ListPodSandboxRequest{})
			if err != nil || len(resp.Items) != 0 {
				t.Errorf("pods after a refused RunPodSandbox: %v %v", resp.GetItems(), err)
			}
			pins, _ := filepath.Glob(filepath.Join(d.State, "*ns", "*"))
			if len(pins) != 0 {
				t.Errorf("namespace pins after a refused RunPodSandbox: %v", pins)
			}
		})
	}
}

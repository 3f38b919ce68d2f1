package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func usernsConfig(u *runtime.UserNamespace) *runtime.PodSandboxConfig {
	cfg := podConfig("userns")
	cfg.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER, UsernsOptions: u}
	return cfg
}

func TestUserNamespaceMappings(t *testing.T) {
	m := func(ctr, host, n uint32) []*runtime.IDMapping {
		return []*runtime.IDMapping{{ContainerId: ctr, HostId: host, Length: n}}
	}
	two := append(m(0, 1000, 100000), m(0, 2000, 100000)...)
	for _, tc := range []struct {
		name    string
		u       *runtime.UserNamespace
		want    bool
		uid     specs.LinuxIDMapping
		wantErr string
	}{
		{name: "no options: the host's", u: nil},
		{name: "node", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}},
		{name: "node with mappings", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE, Uids: m(0, 1000, 10)}, wantErr: "takes no mappings"},
		{name: "pod", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m(0, 100000, 65536), Gids: m(0, 200000, 65536)},
			want: true, uid: specs.LinuxIDMapping{HostID: 100000, Size: 65536}},
		{name: "two mappings", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: two, Gids: two}, wantErr: "exactly one uid mapping"},
		{name: "two gid mappings", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m(0, 1000, 10), Gids: two}, wantErr: "exactly one gid mapping"},
		{name: "no mappings", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}, wantErr: "exactly one uid mapping"},
		{name: "container 0 not mapped", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m(1, 1000, 100000), Gids: m(1, 1000, 100000)}, wantErr: "container ID 0"},
		{name: "empty mapping", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m(0, 1000, 0), Gids: m(0, 1000, 10)}, wantErr: "empty"},
		{name: "host root", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m(0, 0, 65536), Gids: m(0, 0, 65536)}, wantErr: "host root"},
		{name: "past the ID range", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m(0, 1<<32-10, 65536), Gids: m(0, 1000, 10)}, wantErr: "ID range"},
		{name: "container mode", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}, wantErr: "not valid for a pod"},
		{name: "target mode", u: &runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET}, wantErr: "not valid for a pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, _, ok, err := userNamespaceMappings(usernsConfig(tc.u))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ok != tc.want || uid != tc.uid {
				t.Errorf("got %+v, %v, %v; want %+v, %v", uid, ok, err, tc.uid, tc.want)
			}
		})
	}
}

// TestUserNamespacePod: the pod's namespaces are owned by its user
// namespace, which has the asked mappings; its files are root's inside;
// removal leaves no pin.
func TestUserNamespacePod(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, testNetwork(t))
	ctx := context.Background()
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: 400000, Length: 65536}}
	cfg := usernsConfig(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping})
	sb, err := m.Run(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if sb.UserNSPath == "" || !isPinned(sb.UserNSPath) {
		t.Fatalf("user namespace pin %q", sb.UserNSPath)
	}
	got := inNS(t, sb, "nsenter", "--user="+sb.UserNSPath, "cat", "/proc/self/uid_map")
	if f := strings.Fields(got); len(f) != 3 || f[0] != "0" || f[1] != "400000" || f[2] != "65536" {
		t.Errorf("uid_map in the pod's user namespace = %q", got)
	}
	if got := inNS(t, sb, "hostname"); got != "userns-host" {
		t.Errorf("hostname = %q", got)
	}
	// Each of net, ipc and uts is owned by the pod's user namespace: its
	// owner (NS_GET_USERNS) is the pinned namespace.
	userIno := inode(t, sb.UserNSPath)
	for _, p := range []string{sb.NetNSPath, sb.IPCNSPath, sb.UTSNSPath} {
		if owner := ownerInode(t, p); owner != userIno {
			t.Errorf("%s is owned by user namespace %d, want the pod's %d", p, owner, userIno)
		}
	}
	for _, p := range []string{sb.HostnamePath, sb.ResolvConfPath, sb.HostsPath, sb.ShmPath} {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Uid != 400000 || st.Gid != 400000 {
			t.Errorf("%s owned by %d:%d (%v), want the pod root's 400000", p, st.Uid, st.Gid, err)
		}
	}
	// A restarted manager keeps the pod READY with its user namespace.
	m2, err := New(ctx, m.opts)
	if err != nil {
		t.Fatal(err)
	}
	if sb2, err := m2.Get(sb.ID); err != nil || sb2.State != StateReady || sb2.UserNSPath != sb.UserNSPath {
		t.Errorf("after reload: %+v, %v", sb2, err)
	}
	if err := m2.Stop(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := m2.Remove(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sb.UserNSPath); !os.IsNotExist(err) {
		t.Errorf("user namespace pin left: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(m.opts.State, "*ns", sb.ID)); len(left) > 0 {
		t.Errorf("pins left: %v", left)
	}
}

// TestUserNamespaceSharedPID: the infra process of a pod that shares its
// PID namespace makes the pod's namespaces, so that the PID namespace
// belongs to the pod's user namespace too (a container could not mount
// its /proc otherwise).
func TestUserNamespaceSharedPID(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, testNetwork(t))
	ctx := context.Background()
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: 400000, Length: 65536}}
	cfg := usernsConfig(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping})
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	sb, err := m.Run(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if sb.InfraPID == 0 || sb.PIDNSPath == "" {
		t.Fatalf("no infra process: %+v", sb)
	}
	userIno := inode(t, sb.UserNSPath)
	for _, p := range []string{sb.PIDNSPath, sb.NetNSPath, sb.IPCNSPath, sb.UTSNSPath} {
		if owner := ownerInode(t, p); owner != userIno {
			t.Errorf("%s is owned by user namespace %d, want the pod's %d", p, owner, userIno)
		}
	}
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(sb.InfraPID) + "/comm"); strings.TrimSpace(string(comm)) != InfraArgv0 {
		t.Errorf("infra process named %q, want %q", comm, InfraArgv0)
	}
	if got := inode(t, "/proc/"+strconv.Itoa(sb.InfraPID)+"/ns/user"); got != userIno {
		t.Errorf("infra process in user namespace %d, want %d", got, userIno)
	}
	if got := inNS(t, sb, "hostname"); got != "userns-host" {
		t.Errorf("hostname = %q", got)
	}
	if err := m.Stop(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if infraAlive(sb.InfraPID, sb.ID) {
		t.Errorf("infra process %d left", sb.InfraPID)
	}
	if left, _ := filepath.Glob(filepath.Join(m.opts.State, "*ns", sb.ID)); len(left) > 0 {
		t.Errorf("pins left: %v", left)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// ownerInode is the inode of the user namespace that owns the namespace
// at p (ioctl NS_GET_USERNS).
func ownerInode(t *testing.T, p string) uint64 {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/reservation"
)

// fakeNetwork records calls and fails ADD when told to.
type fakeNetwork struct {
	mu       sync.Mutex
	adds     int
	dels     []cni.Pod
	failAdd  error
	addDelay time.Duration
}

func (f *fakeNetwork) Attach(_ context.Context, p cni.Pod) (cni.Result, error) {
	time.Sleep(f.addDelay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adds++
	if f.failAdd != nil {
		return cni.Result{}, f.failAdd
	}
	return cni.Result{IPs: []string{"10.9.9.9", "fd00::9"}}, nil
}

func (f *fakeNetwork) Detach(_ context.Context, p cni.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dels = append(f.dels, p)
	return nil
}

func TestRunFailureLeavesNothing(t *testing.T) {
	requireRoot(t)
	nw := &fakeNetwork{failAdd: errors.New("plugin exploded")}
	m := newTestManager(t, nw)
	cfg := podConfig("fail")
	cgParent := "/critest-fail-" + reservation.NewID()[:8]
	cfg.Linux.CgroupParent = cgParent
	_, err := m.Run(context.Background(), cfg, "")
	if err == nil || !strings.Contains(err.Error(), "plugin exploded") {
		t.Fatalf("Run = %v, want the CNI error", err)
	}
	// Attach runs DEL itself when it fails (cni.Manager does); the pod
	// must not run it a second time.
	if len(nw.dels) != 0 {
		t.Errorf("Detach called %d times after a failed Attach, want 0", len(nw.dels))
	}
	for _, dir := range []string{m.podsDir(), m.statePodsDir(), m.pinDir(nsNet), m.pinDir(nsIPC), m.pinDir(nsUTS)} {
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s holds %d entries after a failed run", dir, len(ents))
		}
	}
	if _, err := os.Stat(filepath.Join(cgroups.Root, "memory", cgParent)); err == nil {
		t.Errorf("pod cgroup %s remains after a failed run", cgParent)
	}
	if len(m.List()) != 0 {
		t.Errorf("failed pod is listed")
	}
	// The key is released: a retry runs afresh.
	nw.failAdd = nil
	sb, err := m.Run(context.Background(), podConfig("fail"), "")
	if err != nil {
		t.Fatal(err)
	}
	if sb.IPs[0] != "10.9.9.9" || sb.IPs[1] != "fd00::9" {
		t.Errorf("IPs = %v", sb.IPs)
	}
	if err := m.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m, sb)
}

func TestConcurrentRetryGetsSamePod(t *testing.T) {
	requireRoot(t)
	nw := &fakeNetwork{addDelay: 200 * time.Millisecond}
	m := newTestManager(t, nw)
	ids := make([]string, 4)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			sb, err := m.Run(context.Background(), podConfig("same"), "")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = sb.ID
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Errorf("concurrent runs gave pods %v", ids)
		}
	}
	if nw.adds != 1 {
		t.Errorf("ADD ran %d times", nw.adds)
	}
	if err := m.Remove(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
}

func TestInfraIgnoresTermAndIsInPodCgroup(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, &fakeNetwork{})
	sb, err := m.Run(context.Background(), podConfig("infra"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Remove(context.Background(), sb.ID)
	unix.Kill(sb.InfraPID, unix.SIGTERM)
	unix.Kill(sb.InfraPID, unix.SIGINT)
	time.Sleep(100 * time.Millisecond)
	if !infraAlive(sb.InfraPID, sb.ID) {
		t.Fatalf("infra process died of SIGTERM/SIGINT")
	}
	procs, _ := os.ReadFile(filepath.Join(cgroups.Root, "memory", cgroups.RelPath(sb.CgroupParent), "cgroup.procs"))
	if !strings.Contains(string(procs), itoa(sb.InfraPID)) {
		t.Errorf("infra %d not in pod cgroup: %q", sb.InfraPID, procs)
	}
	// It is PID 1 of its own PID namespace, different from ours.
	own, _ := os.Readlink("/proc/self/ns/pid")
	theirs, _ := os.Readlink(sb.PIDNSPath)
	if own == theirs || theirs == "" {
		t.Errorf("infra PID namespace %q, ours %q", theirs, own)
	}
	// It shares the pod's network namespace.
	podNet, _ := os.Readlink("/proc/" + itoa(sb.InfraPID) + "/ns/net")
	var st unix.Stat_t
	unix.Stat(sb.NetNSPath, &st)
	if !strings.Contains(podNet, itoa(int(st.Ino))) {
		t.Errorf("infra net ns %s, pod's inode %d", podNet, st.Ino)
	}
	// It reaps orphans: a child that exits in its namespace leaves no zombie.
	if err := m.Stop(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	if infraAlive(sb.InfraPID, sb.ID) {
		t.Errorf("infra survives stop")
	}
}

func TestStopWithNetNSGone(t *testing.T) {
	requireRoot(t)
	nw := &fakeNetwork{}
	m := newTestManager(t, nw)
	sb, err := m.Run(context.Background(), podConfig("gone"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := unpinNamespace(sb.NetNSPath); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(context.Background(), sb.ID); err != nil {
		t.Fatalf("stop with the netns gone: %v", err)
	}
	if len(nw.dels) != 1 {
		t.Errorf("DEL ran %d times", len(nw.dels))
	}
	if err := m.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m, sb)
}

func TestPodResourcesAndSystemdParent(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	m, err := New(context.Background(), Options{Root: filepath.Join(root, "r"), State: filepath.Join(root, "s"), Network: &fakeNetwork{}, CgroupDriver: cgroups.Systemd})
	if err != nil {
		t.Fatal(err)
	}
	cfg := podConfig("res")
	cfg.Linux.CgroupParent = "critest-pod" + reservation.NewID()[:8] + ".slice"
	cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 256 << 20, CpuShares: 512}
	sb, err := m.Run(context.Background(), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cgroups.Root, "memory", cgroups.RelPath(sb.CgroupParent))
	if !strings.HasPrefix(dir, filepath.Join(cgroups.Root, "memory", "critest.slice", "critest-pod")) {
		t.Errorf("systemd pod cgroup at %s", dir)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "memory.limit_in_bytes")); strings.TrimSpace(string(b)) != itoa(256<<20) {
		t.Errorf("pod memory limit = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(cgroups.Root, "cpu", cgroups.RelPath(sb.CgroupParent), "cpu.shares")); strings.TrimSpace(string(b)) != "512" {
		t.Errorf("pod cpu shares = %q", b)
	}
	if err := m.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("pod cgroup %s remains", dir)
	}
	// The parent slice was made on the way; it is the test's to remove.
	if err := cgroups.Delete("/critest.slice"); err != nil {
		t.Error(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestUpdateResources(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, &fakeNetwork{})
	sb, err := m.Run(context.Background(), podConfig("resize"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Remove(context.Background(), sb.ID)
	res := &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20}
	if err := m.UpdateResources(context.Background(), sb.ID, nil, res); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cgroups.Root, "memory", cgroups.RelPath(sb.CgroupParent))
	if b, _ := os.ReadFile(filepath.Join(dir, "memory.limit_in_bytes")); strings.TrimSpace(string(b)) != itoa(128<<20) {
		t.Errorf("pod memory limit after update = %q", b)
	}
	if got, _ := m.Get(sb.ID); got.Config.GetLinux().GetResources().GetMemoryLimitInBytes() != 128<<20 {
		t.Errorf("recorded resources not updated")
	}
	if err := m.UpdateResources(context.Background(), "nope", nil, res); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of an unknown pod = %v", err)
	}
}

func TestSysctlBadValueLeavesNothing(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, &fakeNetwork{})
	cfg := podConfig("badvalue")
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "not-a-number"}
	if _, err := m.Run(context.Background(), cfg, ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "net.ipv4.ip_forward") {
		t.Fatalf("Run = %v, want ErrInvalid naming the sysctl", err)
	}
	for _, dir := range []string{m.podsDir(), m.statePodsDir(), m.pinDir(nsNet), m.pinDir(nsIPC), m.pinDir(nsUTS)} {
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s holds %d entries after a refused sysctl", dir, len(ents))
		}
	}
}

func TestNoNetworkRefusesPodNetwork(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, nil)
	if _, err := m.Run(context.Background(), podConfig("nonet"), ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Run without a network = %v, want ErrInvalid", err)
	}
}

package e2e

import (
	"bufio"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// leakEnv is a daemon serving metrics, so its goroutines can be counted.
type leakEnv struct {
	d       *framework.Daemon
	metrics string // http://addr/metrics
}

func startLeakDaemon(t *testing.T, opts ...framework.Option) *leakEnv {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	d := framework.StartDaemon(t, append(opts, framework.WithArgs("--metrics-address", addr))...)
	// A failed test leaves pods behind; their containers would outlive the
	// daemon. Registered after StartDaemon, this runs before it stops.
	t.Cleanup(func() {
		ctx := framework.Ctx(t)
		resp, err := d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
		if err != nil {
			return
		}
		for _, p := range resp.Items {
			_, _ = d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id})
			_, _ = d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id})
		}
	})
	return &leakEnv{d: d, metrics: "http://" + addr + "/metrics"}
}

// snapshot is what the daemon holds on the host, counted. The counts of
// shared host resources (conmon processes, cgroups, veths, iptables and
// nftables lines)
// are restricted to what this daemon made, so that other daemons on the
// machine cannot disturb them.
type snapshot struct {
	FDs, Goroutines, Mounts, NSPins, Conmons, Cgroups int
	Records, Layers, PacketFilter, Veths, IPs, Files  int
	RSSKiB                                            int
}

// counts are the fields that must come back to their start value.
func (s snapshot) counts() map[string]int {
	return map[string]int{
		"fds": s.FDs, "goroutines": s.Goroutines, "mounts": s.Mounts, "namespace pins": s.NSPins,
		"conmon processes": s.Conmons, "pod/container cgroups": s.Cgroups, "records": s.Records,
		"overlay2 dirs": s.Layers, "iptables/nftables lines": s.PacketFilter, "host veths": s.Veths,
		"IPAM allocations": s.IPs, "files under root and state": s.Files,
	}
}

func (e *leakEnv) snapshot(t *testing.T, ids *idSet) snapshot {
	t.Helper()
	d := e.d
	d.WaitRemovals(t)
	var s snapshot
	pid := strconv.Itoa(d.Pid())
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatalf("daemon fds: %v", err)
	}
	s.FDs = len(fds)
	s.Goroutines = e.goroutines(t)
	s.RSSKiB = rssKiB(t, pid)
	mounts, err := framework.MountsUnder(d.Dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Mounts = len(mounts)
	for _, ns := range []string{"netns", "ipcns", "utsns"} {
		s.NSPins += countEntries(filepath.Join(d.State, ns))
	}
	for _, p := range framework.ProcessesNamed("conmon") {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline"); err == nil && strings.Contains(string(b), d.Dir) {
			s.Conmons++
		}
	}
	s.Cgroups = ids.cgroupDirs()
	s.Records = countEntries(filepath.Join(d.Root, "pods")) + countEntries(filepath.Join(d.Root, "containers")) +
		countEntries(filepath.Join(d.State, "pods")) + countEntries(filepath.Join(d.State, "containers"))
	s.Layers = countEntries(filepath.Join(d.Root, "overlay2"))
	s.PacketFilter = ids.packetFilterLines(t)
	s.Veths = ids.liveVeths(t)
	s.IPs = ids.ipamAllocations()
	s.Files = countTree(d.Root) + countTree(d.State)
	return s
}

// countTree counts the files and directories below dir.
func countTree(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(string, fs.DirEntry, error) error { n++; return nil })
	return n
}

// goroutines reads go_goroutines from the daemon's metrics.
func (e *leakEnv) goroutines(t *testing.T) int {
	t.Helper()
	// No keep-alive: an idle metrics connection would be counted as
	// one of the daemon's fds.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(e.metrics)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("go_goroutines %q: %v", v, err)
			}
			return int(n)
		}
	}
	t.Fatalf("no go_goroutines in the daemon's metrics (%v)", sc.Err())
	return 0
}

func rssKiB(t *testing.T, pid string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%s/status", pid)
	return 0
}

func countEntries(dir string) int {
	ents, _ := os.ReadDir(dir)
	return len(ents)
}

// idSet remembers every pod and container a test made, and the host veths
// of the pods, so leftovers of exactly those can be found.
type idSet struct {
	d     *framework.Daemon
	mu    sync.Mutex
	ids   map[string]bool
	veths map[string]bool
}

func newIDSet(d *framework.Daemon) *idSet {
	return &idSet{d: d, ids: map[string]bool{}, veths: map[string]bool{}}
}

func (s *idSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[id] = true
}

func (s *idSet) addVeths(t *testing.T, pod string) {
	veths := hostVeths(t, s.d, pod)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range veths {
		s.veths[v] = true
	}
}

func (s *idSet) mentions(line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.ids {
		if strings.Contains(line, id) {
			return true
		}
	}
	return false
}

// cgroupDirs counts cgroup directories, in every hierarchy, named after
// one of the IDs.
func (s *idSet) cgroupDirs() int {
	n := 0
	hier, _ := os.ReadDir("/sys/fs/cgroup")
	for _, h := range hier {
		root := filepath.Join("/sys/fs/cgroup", h.Name(), "criserver")
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() || p == root {
				return nil
			}
			if s.mentions(e.Name()) {
				n++
			}
			return nil
		})
	}
	return n
}

// ipamDir is where host-local keeps the addresses of the default network.
const ipamDir = "/var/lib/cni/networks/criserver"

// ipamAllocations counts the addresses host-local holds for the pods.
func (s *idSet) ipamAllocations() int {
	n := 0
	ents, _ := os.ReadDir(ipamDir)
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(ipamDir, e.Name())); err == nil && s.mentions(string(b)) {
			n++
		}
	}
	return n
}

func (s *idSet) packetFilterLines(t *testing.T) int {
	t.Helper()
	out, err := framework.PacketFilterRules()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if s.mentions(line) {
			n++
		}
	}
	return n
}

func (s *idSet) liveVeths(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatalf("ip -o link: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		s.mu.Lock()
		live := s.veths[name]
		s.mu.Unlock()
		if live {
			n++
		}
	}
	return n
}

// grown names the counts that differ between before and after. Goroutines
// may end below their start value: one the warm-up started (an idle HTTP
// connection, a stream session) finishing is not a leak.
func grown(before, after map[string]int) []string {
	var out []string
	for k, v := range before {
		if after[k] > v || (after[k] < v && k != "goroutines") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// checkNoGrowth compares after with before: every count must be back to
// its start value, and RSS bounded. Goroutines get time to wind down.
func (e *leakEnv) checkNoGrowth(t *testing.T, ids *idSet, before snapshot) snapshot {
	t.Helper()
	var after snapshot
	framework.Poll(10*time.Second, func() bool {
		after = e.snapshot(t, ids)
		return len(grown(before.counts(), after.counts())) == 0
	})
	b, a := before.counts(), after.counts()
	for _, k := range grown(b, a) {
		t.Errorf("%s: %d before, %d after", k, b[k], a[k])
	}
	if limit := 2*before.RSSKiB + 20*1024; after.RSSKiB > limit {
		t.Errorf("daemon RSS grew from %d KiB to %d KiB (limit %d KiB)", before.RSSKiB, after.RSSKiB, limit)
	}
	t.Logf("before: %+v", before)
	t.Logf("after:  %+v", after)
	return after
}

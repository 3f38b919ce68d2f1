package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/test/e2e/framework"
)

// metricSet indexes one ListPodSandboxMetrics answer by name and extra
// label values ("name{v1,v2}"), checking on the way that each metric has a
// descriptor with as many label keys as it has label values.
type metricSet struct {
	pod, ctr map[string]*runtime.Metric
	// oldest is the oldest cached sample the container's figures came from.
	oldest time.Time
}

const baseLabels = 6 // container, id, image, name, namespace, pod

func metricKey(m *runtime.Metric) string {
	return m.Name + "{" + strings.Join(m.LabelValues[min(baseLabels, len(m.LabelValues)):], ",") + "}"
}

func indexMetrics(t *testing.T, descs map[string]*runtime.MetricDescriptor, pm *runtime.PodSandboxMetrics, ctrID string) metricSet {
	t.Helper()
	set := metricSet{pod: map[string]*runtime.Metric{}, ctr: map[string]*runtime.Metric{}}
	check := func(m *runtime.Metric) {
		d := descs[m.Name]
		if d == nil {
			t.Errorf("metric %s has no descriptor", m.Name)
			return
		}
		if len(m.LabelValues) != len(d.LabelKeys) {
			t.Errorf("metric %s: %d label values for %d label keys %v", m.Name, len(m.LabelValues), len(d.LabelKeys), d.LabelKeys)
		}
		// cAdvisor's counters end in _total, but for the inode gauge, and
		// the limit hit count.
		wantType := runtime.MetricType_GAUGE
		if (strings.HasSuffix(m.Name, "_total") && m.Name != "container_fs_inodes_total") || m.Name == "container_memory_failcnt" {
			wantType = runtime.MetricType_COUNTER
		}
		if m.MetricType != wantType {
			t.Errorf("metric %s is a %v", m.Name, m.MetricType)
		}
	}
	for _, m := range pm.Metrics {
		check(m)
		set.pod[metricKey(m)] = m
	}
	for _, cm := range pm.ContainerMetrics {
		if cm.ContainerId != ctrID {
			t.Errorf("metrics of container %s, want only %s", cm.ContainerId, ctrID)
			continue
		}
		for _, m := range cm.Metrics {
			check(m)
			set.ctr[metricKey(m)] = m
			if m.Timestamp != 0 && (set.oldest.IsZero() || time.Unix(0, m.Timestamp).Before(set.oldest)) {
				set.oldest = time.Unix(0, m.Timestamp)
			}
		}
	}
	return set
}

// cgroupFile reads a v1 cgroup file of the container as a number; "max"
// and v1's "no limit" read 0, as cAdvisor reports them.
func cgroupFile(t *testing.T, rel, controller, name string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroups.Root, controller, rel, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "max" || s == "-1" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: %q", name, s)
	}
	if n > 1<<62 {
		return 0
	}
	return n
}

// TestPodSandboxMetrics checks the CRI metrics calls against the cgroup of
// a container that did its work and now sleeps, so that its figures hold
// still between the daemon's sample and the test's reads.
func TestPodSandboxMetrics(t *testing.T) {
	if _, err := os.Stat(filepath.Join(cgroups.Root, "cgroup.controllers")); err == nil {
		t.Skip("the cgroup comparisons read cgroup v1 files; this host runs cgroup v2 alone")
	}
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)

	// A few seconds of CPU under a quota of 90% of one CPU (so throttled),
	// 4 MiB written, then sleep.
	cfg := e.config("metered", `dd if=/dev/zero of=/data bs=1M count=4 2>/dev/null; sync; `+
		`i=0; while [ $i -lt 1500000 ]; do i=$((i+1)); done; echo done; exec sleep 3600`)
	cfg.Linux.Resources = &runtime.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 90000, CpuShares: 512, MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 64 << 20,
	}
	id := e.run(t, cfg)
	st, info := e.status(t, id)
	rel := cgroups.RelPath(info.CgroupsPath)

	// Traffic to the pod, for its interface counters: UDP to the discard
	// port, counted on receipt whether or not anything listens.
	ps, err := e.d.Runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: e.pod})
	if err != nil {
		t.Fatal(err)
	}
	// An unconnected socket: the pod's port-unreachable answers must not
	// fail the next write.
	conn, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	dst := &net.UDPAddr{IP: net.ParseIP(ps.Status.GetNetwork().GetIp()), Port: 9}
	for range 10 {
		if _, err := conn.WriteTo(make([]byte, 100), dst); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()

	// Wait out the busy loop, then for a sample taken after it.
	if !framework.Poll(90*time.Second, func() bool { return slices.Contains(e.logLines(t, "metered"), "stdout F done") }) {
		t.Fatal("the busy loop did not end")
	}
	settled := time.Now()

	dresp, err := e.d.Runtime.ListMetricDescriptors(ctx, &runtime.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	descs := map[string]*runtime.MetricDescriptor{}
	for _, d := range dresp.Descriptors {
		if descs[d.Name] != nil || d.Help == "" || !slices.Equal(d.LabelKeys[:baseLabels], []string{"container", "id", "image", "name", "namespace", "pod"}) {
			t.Errorf("descriptor %v: duplicate, without help or without the base labels", d)
		}
		descs[d.Name] = d
	}

	var set metricSet
	if !framework.Poll(20*time.Second, func() bool {
		resp, err := e.d.Runtime.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.PodMetrics) != 1 || resp.PodMetrics[0].PodSandboxId != e.pod {
			t.Fatalf("metrics of %d pods, want only %s: %v", len(resp.PodMetrics), e.pod, resp.PodMetrics)
		}
		set = indexMetrics(t, descs, resp.PodMetrics[0], id)
		return set.oldest.After(settled)
	}) {
		t.Fatalf("no sample newer than %v (oldest %v)", settled, set.oldest)
	}

	value := func(m map[string]*runtime.Metric, key string) uint64 {
		t.Helper()
		if m[key] == nil {
			t.Errorf("no metric %s", key)
			return 0
		}
		return m[key].Value.GetValue()
	}

	// The container's labels, and figures that must equal the cgroup's.
	if m := set.ctr["container_memory_usage_bytes{}"]; m != nil {
		want := []string{"metered", rel, st.Image.GetImage(), id, e.podCf.Metadata.Namespace, e.podCf.Metadata.Name}
		if !slices.Equal(m.LabelValues, want) {
			t.Errorf("container labels %v, want %v", m.LabelValues, want)
		}
	}
	cpuStat := func() map[string]uint64 {
		b, err := os.ReadFile(filepath.Join(cgroups.Root, "cpu", rel, "cpu.stat"))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]uint64{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok {
				out[k], _ = strconv.ParseUint(v, 10, 64)
			}
		}
		return out
	}()
	procs, err := os.ReadFile(filepath.Join(cgroups.Root, "memory", rel, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	oom := 0
	if b, err := os.ReadFile(filepath.Join(cgroups.Root, "memory", rel, "memory.oom_control")); err == nil {
		_, _ = fmt.Sscanf(string(b[strings.Index(string(b), "oom_kill ")+len("oom_kill "):]), "%d", &oom)
	}
	var layerFS unix.Statfs_t
	if err := unix.Statfs(filepath.Join(e.d.Root, "overlay2"), &layerFS); err != nil {
		t.Fatal(err)
	}
	exact := []struct {
		key  string
		want uint64
	}{
		{"container_spec_cpu_period{}", cgroupFile(t, rel, "cpu", "cpu.cfs_period_us")},
		{"container_spec_cpu_quota{}", cgroupFile(t, rel, "cpu", "cpu.cfs_quota_us")},
		{"container_spec_cpu_shares{}", cgroupFile(t, rel, "cpu", "cpu.shares")},
		{"container_spec_memory_limit_bytes{}", cgroupFile(t, rel, "memory", "memory.limit_in_bytes")},
		{"container_spec_memory_reservation_limit_bytes{}", cgroupFile(t, rel, "memory", "memory.soft_limit_in_bytes")},
		{"container_cpu_usage_seconds_total{total}", cgroupFile(t, rel, "cpuacct", "cpuacct.usage") / 1e9},
		{"container_cpu_user_seconds_total{}", cgroupFile(t, rel, "cpuacct", "cpuacct.usage_user") / 1e9},
		{"container_cpu_cfs_periods_total{}", cpuStat["nr_periods"]},
		{"container_cpu_cfs_throttled_periods_total{}", cpuStat["nr_throttled"]},
		{"container_memory_max_usage_bytes{}", cgroupFile(t, rel, "memory", "memory.max_usage_in_bytes")},
		{"container_memory_failcnt{}", cgroupFile(t, rel, "memory", "memory.failcnt")},
		{"container_oom_events_total{}", uint64(oom)},
		{"container_threads{}", cgroupFile(t, rel, "pids", "pids.current")},
		{"container_threads_max{}", cgroupFile(t, rel, "pids", "pids.max")},
		{"container_processes{}", uint64(len(strings.Fields(string(procs))))},
		{"container_start_time_seconds{}", uint64(time.Unix(0, st.StartedAt).Unix())},
		{"container_creation_time_seconds{}", uint64(time.Unix(0, st.CreatedAt).Unix())},
	}
	for _, tc := range exact {
		if got := value(set.ctr, tc.key); got != tc.want {
			t.Errorf("%s = %d, the cgroup says %d", tc.key, got, tc.want)
		}
	}
	if v := value(set.ctr, "container_spec_cpu_quota{}"); v != 90000 {
		t.Errorf("quota %d, the container asked 90000", v)
	}
	if v := value(set.ctr, "container_cpu_usage_seconds_total{total}"); v < 1 {
		t.Errorf("cpu usage %d s after a busy loop", v)
	}
	if v := value(set.ctr, "container_cpu_cfs_periods_total{}"); v < 10 {
		t.Errorf("%d CFS periods after a busy loop under a quota", v)
	}
	// Memory moves a little even in a sleeping container (kernel
	// accounting batches); within 10%.
	for key, file := range map[string]string{"container_memory_usage_bytes{}": "memory.usage_in_bytes"} {
		got, want := float64(value(set.ctr, key)), float64(cgroupFile(t, rel, "memory", file))
		if got < want*0.9 || got > want*1.1 {
			t.Errorf("%s = %.0f, the cgroup says %.0f", key, got, want)
		}
	}
	// The 4 MiB written to the writable layer, on the layer's filesystem.
	var fsKey string
	for k := range set.ctr {
		if strings.HasPrefix(k, "container_fs_usage_bytes{") {
			fsKey = k
		}
	}
	if fsKey == "" || fsKey == "container_fs_usage_bytes{}" {
		t.Errorf("no container_fs_usage_bytes with a device: %q", fsKey)
	} else {
		device := strings.TrimSuffix(strings.TrimPrefix(fsKey, "container_fs_usage_bytes{"), "}")
		if v := value(set.ctr, fsKey); v < 4<<20 {
			t.Errorf("%s = %d, want at least 4 MiB", fsKey, v)
		}
		if v, want := value(set.ctr, "container_fs_limit_bytes{"+device+"}"), layerFS.Blocks*uint64(layerFS.Bsize); v != want {
			t.Errorf("fs limit %d, statfs says %d", v, want)
		}
		if v, want := value(set.ctr, "container_fs_inodes_total{"+device+"}"), layerFS.Files; v != want {
			t.Errorf("fs inodes %d, statfs says %d", v, want)
		}
	}

	// The pod: its cgroup, and its interface counters against the
	// namespace's own, which only grow.
	if m := set.pod["container_memory_usage_bytes{}"]; m == nil || m.LabelValues[0] != "" || m.LabelValues[1] == "" || m.LabelValues[5] != e.podCf.Metadata.Name {
		t.Errorf("pod-level memory usage %v, want container \"\", the pod cgroup and the pod name", m)
	}
	netdev, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", info.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var rxBytes, rxPackets uint64
	for _, line := range strings.Split(string(netdev), "\n") {
		if name, rest, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "eth0" {
			_, _ = fmt.Sscan(rest, &rxBytes, &rxPackets)
		}
	}
	gotPackets, gotBytes := value(set.pod, "container_network_receive_packets_total{eth0}"), value(set.pod, "container_network_receive_bytes_total{eth0}")
	if gotPackets < 10 || gotPackets > rxPackets || gotBytes < 1000 || gotBytes > rxBytes {
		t.Errorf("eth0 received %d packets, %d bytes; want at least the 10 sent (1000 bytes), at most the %d packets, %d bytes now",
			gotPackets, gotBytes, rxPackets, rxBytes)
	}

	// The stream sends the same pods, containers and series.
	stream, err := e.d.Runtime.StreamPodSandboxMetrics(ctx, &runtime.StreamPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	streamed := drain(t, stream.Recv, (*runtime.StreamPodSandboxMetricsResponse).GetPodSandboxMetrics)
	if len(streamed) != 1 {
		t.Fatalf("streamed metrics of %d pods, want 1", len(streamed))
	}
	sset := indexMetrics(t, descs, streamed[0], id)
	for _, pair := range [][2]map[string]*runtime.Metric{{set.pod, sset.pod}, {set.ctr, sset.ctr}} {
		listed, got := keysOf(pair[0]), keysOf(pair[1])
		if !slices.Equal(listed, got) {
			t.Errorf("streamed series %v, listed %v", got, listed)
		}
	}
}

func keysOf(m map[string]*runtime.Metric) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPodSandboxMetricsFamilies: included_pod_metrics limits both the
// descriptors and the metrics to the families it names.
func TestPodSandboxMetricsFamilies(t *testing.T) {
	e := newCtrEnv(t, framework.WithConfig("[stats]\nincluded_pod_metrics = [\"cpu\", \"network\"]\n"))
	ctx := framework.Ctx(t)
	id := e.run(t, e.config("sleeper", "sleep 3600"))

	dresp, err := e.d.Runtime.ListMetricDescriptors(ctx, &runtime.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	descs := map[string]*runtime.MetricDescriptor{}
	for _, d := range dresp.Descriptors {
		descs[d.Name] = d
		if !strings.HasPrefix(d.Name, "container_cpu_") && !strings.HasPrefix(d.Name, "container_network_") &&
			!slices.Contains([]string{"container_last_seen", "container_start_time_seconds", "container_creation_time_seconds"}, d.Name) {
			t.Errorf("descriptor %s served with only cpu and network included", d.Name)
		}
	}
	resp, err := e.d.Runtime.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{})
	if err != nil || len(resp.PodMetrics) != 1 {
		t.Fatalf("ListPodSandboxMetrics: %v %v", resp.GetPodMetrics(), err)
	}
	set := indexMetrics(t, descs, resp.PodMetrics[0], id)
	if set.ctr["container_cpu_usage_seconds_total{total}"] == nil {
		t.Errorf("no cpu usage among %v", keysOf(set.ctr))
	}
	if set.pod["container_network_receive_bytes_total{eth0}"] == nil {
		t.Errorf("no eth0 counters among %v", keysOf(set.pod))
	}
}

package podmetrics

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
)

func TestParseFamilies(t *testing.T) {
	tests := []struct {
		names   []string
		want    Families
		wantErr string
	}{
		{names: nil, want: 0},
		{names: []string{"cpu", "memory"}, want: CPU | Memory},
		{names: All.Names(), want: All},
		{names: []string{"cpu", "hugetlb"}, wantErr: `unknown metric family "hugetlb"`},
	}
	for _, tc := range tests {
		got, err := ParseFamilies(tc.names)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseFamilies(%v) err = %v, want %q", tc.names, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseFamilies(%v) = %v, %v; want %v", tc.names, got, err, tc.want)
		}
	}
	if err := (Config{IncludedPodMetrics: []string{"bogus"}}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "included_pod_metrics: ") {
		t.Errorf("Validate of an unknown family: %v", err)
	}
	if DefaultConfig().Families() != All {
		t.Errorf("default families = %v, want all", DefaultConfig().Families().Names())
	}
}

func TestCgroupExtra(t *testing.T) {
	tests := []struct {
		fs   Families
		want cgroups.Extra
	}{
		{0, 0},
		// Network and disk need nothing from the cgroup.
		{Network | Disk, 0},
		{CPU, cgroups.ExtraCPU},
		{Memory | OOM, cgroups.ExtraMemory | cgroups.ExtraOOM},
		{DiskIO | Process | Spec | Pressure, cgroups.ExtraIO | cgroups.ExtraProcesses | cgroups.ExtraSpec | cgroups.ExtraPressure},
	}
	for _, tc := range tests {
		if got := tc.fs.CgroupExtra(); got != tc.want {
			t.Errorf("%v.CgroupExtra() = %b, want %b", tc.fs.Names(), got, tc.want)
		}
	}
}

func TestDescriptors(t *testing.T) {
	descs := All.Descriptors()
	byName := map[string]*runtime.MetricDescriptor{}
	for _, d := range descs {
		if byName[d.Name] != nil {
			t.Errorf("descriptor %s twice", d.Name)
		}
		byName[d.Name] = d
		if !slices.Equal(d.LabelKeys[:len(BaseLabelKeys)], BaseLabelKeys) {
			t.Errorf("%s label keys %v do not start with %v", d.Name, d.LabelKeys, BaseLabelKeys)
		}
	}
	// A sample of cAdvisor's exact names, help texts and extra labels.
	tests := []struct {
		name, help string
		extra      []string
	}{
		{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", []string{"cpu"}},
		{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", nil},
		{"container_memory_working_set_bytes", "Current working set in bytes.", nil},
		{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", nil},
		{"container_memory_failures_total", "Cumulative count of memory allocation failures.", []string{"failure_type", "scope"}},
		{"container_oom_events_total", "Count of out of memory events observed for the container", nil},
		{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", []string{"interface"}},
		{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", []string{"device"}},
		{"container_fs_writes_bytes_total", "Cumulative count of bytes written", []string{"device"}},
		{"container_blkio_device_usage_total", "Blkio Device bytes usage", []string{"device", "major", "minor", "operation"}},
		{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", nil},
		{"container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", nil},
		{"container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", nil},
		{"container_last_seen", "Last time a container was seen by the exporter", nil},
		{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", nil},
	}
	for _, tc := range tests {
		d := byName[tc.name]
		if d == nil {
			t.Errorf("no descriptor %s", tc.name)
			continue
		}
		if d.Help != tc.help {
			t.Errorf("%s help %q, want %q", tc.name, d.Help, tc.help)
		}
		if got := d.LabelKeys[len(BaseLabelKeys):]; !slices.Equal(got, tc.extra) && len(got)+len(tc.extra) > 0 {
			t.Errorf("%s extra labels %v, want %v", tc.name, got, tc.extra)
		}
	}

	// A family left out has no descriptor; the always-served ones stay.
	some := (CPU | Network).Descriptors()
	for _, d := range some {
		if strings.HasPrefix(d.Name, "container_memory_") || strings.HasPrefix(d.Name, "container_fs_") {
			t.Errorf("descriptor %s served without its family", d.Name)
		}
	}
	names := func(ds []*runtime.MetricDescriptor) (out []string) {
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return out
	}
	for _, want := range []string{"container_cpu_user_seconds_total", "container_network_transmit_bytes_total", "container_last_seen"} {
		if !slices.Contains(names(some), want) {
			t.Errorf("cpu+network descriptors lack %s", want)
		}
	}
	if got := Families(0).Descriptors(); len(got) != 3 {
		t.Errorf("no family: descriptors %v, want the 3 time ones", names(got))
	}
}

func fullInput(now time.Time) *Input {
	oom := uint64(2)
	return &Input{
		Labels: Labels{Container: "app", ID: "/kubepods/podu/c1", Image: "busybox:latest", Name: "c1", Namespace: "ns", Pod: "p"},
		Stats: &cgroups.Stats{
			Timestamp: now, CPUUsageNanos: 3_500_000_000, MemoryUsage: 1000, MemoryWorkingSet: 700, MemoryRSS: 400, Pids: 5,
			CPU:       &cgroups.CPUStats{UserNanos: 2_000_000_000, SystemNanos: 1_000_000_000, Periods: 10, ThrottledPeriods: 3, ThrottledNanos: 4_000_000_000},
			Memory:    &cgroups.MemoryStats{Cache: 300, Swap: 30, MappedFile: 20, Kernel: 64, MaxUsage: 2000, Failcnt: 1, PgFault: 9, PgMajFault: 2},
			OOMKills:  &oom,
			IO:        []cgroups.DeviceIO{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}},
			Processes: &cgroups.ProcessStats{Processes: 2, ThreadsMax: 100, FDs: 7, Sockets: 1},
			Spec:      &cgroups.SpecStats{CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 1024, MemoryLimit: 64 << 20, MemorySwapLimit: 64 << 20},
			Pressure:  &cgroups.PressureStats{CPU: cgroups.PSI{Some: 3_000_000, Full: 1_000_000}},
		},
		Network:    []NetInterface{{Name: "eth0", RxBytes: 100, RxPackets: 2, TxBytes: 50, TxPackets: 1, RxDropped: 3}},
		NetworkAt:  now,
		Fs:         &FsUsage{Device: "/dev/vda1", UsageBytes: 4096, LimitBytes: 1 << 30, Inodes: 1000, InodesFree: 900, Timestamp: now},
		DeviceName: func(major, minor uint64) string { return fmt.Sprintf("/dev/b%d_%d", major, minor) },
		Created:    now.Add(-time.Minute),
		Started:    now.Add(-30 * time.Second),
	}
}

// key is a metric's name with its extra label values.
func key(m *runtime.Metric) string {
	return m.Name + "{" + strings.Join(m.LabelValues[len(BaseLabelKeys):], ",") + "}"
}

func TestMetricsValues(t *testing.T) {
	now := time.Unix(1_700_000_000, 500)
	in := fullInput(now)
	got := map[string]*runtime.Metric{}
	for _, m := range All.Metrics(in) {
		if got[key(m)] != nil {
			t.Errorf("metric %s twice", key(m))
		}
		got[key(m)] = m
	}
	tests := []struct {
		key  string
		want uint64
		typ  runtime.MetricType
	}{
		{"container_cpu_usage_seconds_total{total}", 3, counter},
		{"container_cpu_user_seconds_total{}", 2, counter},
		{"container_cpu_system_seconds_total{}", 1, counter},
		{"container_cpu_cfs_periods_total{}", 10, counter},
		{"container_cpu_cfs_throttled_periods_total{}", 3, counter},
		{"container_cpu_cfs_throttled_seconds_total{}", 4, counter},
		{"container_memory_usage_bytes{}", 1000, gauge},
		{"container_memory_working_set_bytes{}", 700, gauge},
		{"container_memory_rss{}", 400, gauge},
		{"container_memory_cache{}", 300, gauge},
		{"container_memory_swap{}", 30, gauge},
		{"container_memory_failcnt{}", 1, counter},
		{"container_memory_max_usage_bytes{}", 2000, gauge},
		{"container_memory_failures_total{pgmajfault,hierarchy}", 2, counter},
		{"container_oom_events_total{}", 2, counter},
		{"container_network_receive_bytes_total{eth0}", 100, counter},
		{"container_network_receive_packets_dropped_total{eth0}", 3, counter},
		{"container_network_transmit_packets_total{eth0}", 1, counter},
		{"container_fs_usage_bytes{/dev/vda1}", 4096, gauge},
		{"container_fs_limit_bytes{/dev/vda1}", 1 << 30, gauge},
		{"container_fs_inodes_free{/dev/vda1}", 900, gauge},
		{"container_fs_reads_bytes_total{/dev/b8_0}", 4096, counter},
		{"container_fs_writes_total{/dev/b8_0}", 2, counter},
		{"container_blkio_device_usage_total{/dev/b8_0,8,0,Write}", 8192, counter},
		{"container_processes{}", 2, gauge},
		{"container_threads{}", 5, gauge},
		{"container_threads_max{}", 100, gauge},
		{"container_file_descriptors{}", 7, gauge},
		{"container_sockets{}", 1, gauge},
		{"container_spec_cpu_quota{}", 20000, gauge},
		{"container_spec_cpu_shares{}", 1024, gauge},
		{"container_spec_memory_limit_bytes{}", 64 << 20, gauge},
		{"container_spec_memory_reservation_limit_bytes{}", 0, gauge},
		{"container_pressure_cpu_waiting_seconds_total{}", 3, counter},
		{"container_pressure_cpu_stalled_seconds_total{}", 1, counter},
		{"container_last_seen{}", 1_700_000_000, gauge},
		{"container_start_time_seconds{}", 1_700_000_000 - 30, gauge},
		{"container_creation_time_seconds{}", 1_700_000_000 - 60, gauge},
	}
	for _, tc := range tests {
		m := got[tc.key]
		if m == nil {
			t.Errorf("no metric %s", tc.key)
			continue
		}
		if m.Value.GetValue() != tc.want || m.MetricType != tc.typ {
			t.Errorf("%s = %d (%v), want %d (%v)", tc.key, m.Value.GetValue(), m.MetricType, tc.want, tc.typ)
		}
		if !slices.Equal(m.LabelValues[:len(BaseLabelKeys)], []string{"app", "/kubepods/podu/c1", "busybox:latest", "c1", "ns", "p"}) {
			t.Errorf("%s base labels %v", tc.key, m.LabelValues)
		}
	}
	if m := got["container_memory_usage_bytes{}"]; m != nil && m.Timestamp != now.UnixNano() {
		t.Errorf("cached figure timestamp %d, want the sample's %d", m.Timestamp, now.UnixNano())
	}
	if m := got["container_start_time_seconds{}"]; m != nil && m.Timestamp != 0 {
		t.Errorf("live figure timestamp %d, want 0", m.Timestamp)
	}
}

// TestMetricsMatchDescriptors checks, for several family sets and inputs,
// that every metric has a descriptor in the same set, with as many label
// keys as the metric has label values.
func TestMetricsMatchDescriptors(t *testing.T) {
	now := time.Now()
	noStats := fullInput(now)
	noStats.Stats = nil
	bare := fullInput(now)
	bare.Stats.CPU, bare.Stats.Memory, bare.Stats.Spec, bare.Stats.Pressure = nil, nil, nil, nil
	tests := []struct {
		name string
		fs   Families
		in   *Input
	}{
		{"all", All, fullInput(now)},
		{"cpu and network", CPU | Network, fullInput(now)},
		{"none", 0, fullInput(now)},
		{"no cgroup sample", All, noStats},
		{"extras not read", All, bare},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := map[string]int{}
			for _, d := range tc.fs.Descriptors() {
				keys[d.Name] = len(d.LabelKeys)
			}
			ms := tc.fs.Metrics(tc.in)
			if len(ms) == 0 {
				t.Fatal("no metric")
			}
			for _, m := range ms {
				n, ok := keys[m.Name]
				if !ok {
					t.Errorf("metric %s has no descriptor in %v", m.Name, tc.fs.Names())
					continue
				}
				if n != len(m.LabelValues) {
					t.Errorf("metric %s has %d label values, its descriptor %d keys", m.Name, len(m.LabelValues), n)
				}
			}
		})
	}
}

func TestCFSFiguresOfAQuotaBeforeItsFirstPeriod(t *testing.T) {
	in := fullInput(time.Now())
	in.Stats.CPU.Periods, in.Stats.CPU.ThrottledPeriods, in.Stats.CPU.ThrottledNanos = 0, 0, 0
	var got []string
	for _, m := range (CPU | Spec).Metrics(in) {
		if strings.HasPrefix(m.Name, "container_cpu_cfs_") {
			got = append(got, m.Name)
			if m.Value.GetValue() != 0 {
				t.Errorf("%s = %d before any period, want 0", m.Name, m.Value.GetValue())
			}
		}
	}
	if len(got) != 3 {
		t.Errorf("CFS series of a container with a quota and no period yet: %v, want all 3", got)
	}
}

func TestMetricsLeaveOutWhatIsNotThere(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		fs     Families
		change func(in *Input)
		absent []string
	}{
		{"no quota, no CFS figures", CPU | Spec, func(in *Input) { in.Stats.CPU.Periods, in.Stats.Spec.CPUQuota = 0, 0 },
			[]string{"container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_seconds_total"}},
		{"no quota, no spec quota", Spec, func(in *Input) { in.Stats.Spec.CPUQuota = 0 }, []string{"container_spec_cpu_quota"}},
		{"no PSI", Pressure, func(in *Input) { in.Stats.Pressure = nil }, []string{"container_pressure_cpu_waiting_seconds_total"}},
		{"no network (a container)", Network, func(in *Input) { in.Network = nil }, []string{"container_network_receive_bytes_total"}},
		{"no cgroup sample", All, func(in *Input) { in.Stats = nil },
			[]string{"container_cpu_usage_seconds_total", "container_memory_usage_bytes", "container_threads"}},
		{"family left out", All &^ Memory, func(*Input) {}, []string{"container_memory_usage_bytes", "container_memory_rss"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fullInput(now)
			tc.change(in)
			for _, m := range tc.fs.Metrics(in) {
				if slices.Contains(tc.absent, m.Name) {
					t.Errorf("metric %s served", m.Name)
				}
			}
		})
	}
}

func TestUnnamedDevicesKeepDistinctLabels(t *testing.T) {
	in := fullInput(time.Now())
	in.Stats.IO = []cgroups.DeviceIO{{Major: 8, Minor: 0, Reads: 1}, {Major: 253, Minor: 1, Reads: 2}}
	in.DeviceName = func(major, minor uint64) string {
		if major == 8 {
			return "/dev/sda"
		}
		return ""
	}
	var got []string
	for _, m := range DiskIO.Metrics(in) {
		if m.Name == "container_fs_reads_total" {
			got = append(got, key(m))
		}
	}
	want := []string{"container_fs_reads_total{/dev/sda}", "container_fs_reads_total{253:1}"}
	if !slices.Equal(got, want) {
		t.Errorf("reads series %v, want %v", got, want)
	}
}

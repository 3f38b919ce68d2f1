package cgroups

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func u64p(v uint64) *uint64 { return &v }

// v1Base is the files every v1 read needs.
func v1Base() map[string]string {
	return map[string]string{
		"cpuacct/pod/c/cpuacct.usage":        "5000\n",
		"memory/pod/c/memory.usage_in_bytes": "1000\n",
		"memory/pod/c/memory.stat": "cache 1\nrss 2\npgfault 7\npgmajfault 1\ntotal_cache 500\ntotal_rss 400\n" +
			"total_swap 30\ntotal_mapped_file 20\ntotal_inactive_file 300\ntotal_pgfault 9\ntotal_pgmajfault 2\n",
	}
}

func with(base map[string]string, more map[string]string) map[string]string {
	for k, v := range more {
		base[k] = v
	}
	return base
}

func TestReadExtraV1(t *testing.T) {
	tests := []struct {
		name  string
		extra Extra
		files map[string]string
		check func(t *testing.T, st *Stats)
	}{
		{
			name:  "nothing extra reads nothing extra",
			extra: 0,
			files: with(v1Base(), map[string]string{"cpu/pod/c/cpu.stat": "nr_periods 5\n"}),
			check: func(t *testing.T, st *Stats) {
				if st.CPU != nil || st.Memory != nil || st.OOMKills != nil || st.IO != nil || st.Processes != nil || st.Spec != nil || st.Pressure != nil {
					t.Errorf("extras read without being asked: %+v", st)
				}
			},
		},
		{
			name:  "cpu",
			extra: ExtraCPU,
			files: with(v1Base(), map[string]string{
				"cpuacct/pod/c/cpuacct.usage_user": "3000\n",
				"cpuacct/pod/c/cpuacct.usage_sys":  "2000\n",
				"cpu/pod/c/cpu.stat":               "nr_periods 50\nnr_throttled 7\nthrottled_time 123456789\n",
			}),
			check: func(t *testing.T, st *Stats) {
				want := &CPUStats{UserNanos: 3000, SystemNanos: 2000, Periods: 50, ThrottledPeriods: 7, ThrottledNanos: 123456789}
				if !reflect.DeepEqual(st.CPU, want) {
					t.Errorf("CPU = %+v, want %+v", st.CPU, want)
				}
			},
		},
		{
			name:  "memory and oom",
			extra: ExtraMemory | ExtraOOM,
			files: with(v1Base(), map[string]string{
				"memory/pod/c/memory.kmem.usage_in_bytes": "64\n",
				"memory/pod/c/memory.max_usage_in_bytes":  "2000\n",
				"memory/pod/c/memory.failcnt":             "3\n",
				"memory/pod/c/memory.oom_control":         "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
			}),
			check: func(t *testing.T, st *Stats) {
				want := &MemoryStats{Cache: 500, Swap: 30, MappedFile: 20, Kernel: 64, MaxUsage: 2000, Failcnt: 3, PgFault: 7, PgMajFault: 1}
				if !reflect.DeepEqual(st.Memory, want) {
					t.Errorf("Memory = %+v, want %+v", st.Memory, want)
				}
				if st.OOMKills == nil || *st.OOMKills != 2 {
					t.Errorf("OOMKills = %v, want 2", st.OOMKills)
				}
			},
		},
		{
			name:  "kernel memory file gone (newer kernels)",
			extra: ExtraMemory,
			files: v1Base(),
			check: func(t *testing.T, st *Stats) {
				if st.Memory == nil || st.Memory.Kernel != 0 || st.Memory.Cache != 500 {
					t.Errorf("Memory = %+v", st.Memory)
				}
			},
		},
		{
			name:  "blkio",
			extra: ExtraIO,
			files: with(v1Base(), map[string]string{
				"blkio/pod/c/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Total 12288\n253:1 Read 10\n253:1 Write 0\nTotal 12298\n",
				"blkio/pod/c/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\n253:1 Read 1\n253:1 Write 0\nTotal 4\n",
			}),
			check: func(t *testing.T, st *Stats) {
				want := []DeviceIO{
					{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2},
					{Major: 253, Minor: 1, ReadBytes: 10, Reads: 1},
				}
				if !reflect.DeepEqual(st.IO, want) {
					t.Errorf("IO = %+v, want %+v", st.IO, want)
				}
			},
		},
		{
			name:  "spec, unlimited memory reads 0",
			extra: ExtraSpec,
			files: with(v1Base(), map[string]string{
				"cpu/pod/c/cpu.cfs_period_us":              "100000\n",
				"cpu/pod/c/cpu.cfs_quota_us":               "20000\n",
				"cpu/pod/c/cpu.shares":                     "1024\n",
				"memory/pod/c/memory.limit_in_bytes":       "67108864\n",
				"memory/pod/c/memory.memsw.limit_in_bytes": "9223372036854771712\n",
				"memory/pod/c/memory.soft_limit_in_bytes":  "9223372036854771712\n",
			}),
			check: func(t *testing.T, st *Stats) {
				want := &SpecStats{CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 1024, MemoryLimit: 64 << 20}
				if !reflect.DeepEqual(st.Spec, want) {
					t.Errorf("Spec = %+v, want %+v", st.Spec, want)
				}
			},
		},
		{
			name:  "no quota",
			extra: ExtraSpec,
			files: with(v1Base(), map[string]string{"cpu/pod/c/cpu.cfs_quota_us": "-1\n"}),
			check: func(t *testing.T, st *Stats) {
				if st.Spec == nil || st.Spec.CPUQuota != 0 {
					t.Errorf("Spec = %+v", st.Spec)
				}
			},
		},
		{
			name:  "no pressure on v1",
			extra: ExtraPressure,
			files: v1Base(),
			check: func(t *testing.T, st *Stats) {
				if st.Pressure != nil {
					t.Errorf("Pressure = %+v on v1", st.Pressure)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			st, err := readCgroup1Stats(root, "/pod/c", tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, st)
		})
	}
}

func TestReadExtraV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"c/cpu.stat":            "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 10\nnr_throttled 4\nthrottled_usec 7\n",
		"c/memory.current":      "1000\n",
		"c/memory.stat":         "anon 400\nfile 500\nkernel 64\nfile_mapped 20\ninactive_file 300\npgfault 9\npgmajfault 2\n",
		"c/memory.events":       "low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\n",
		"c/memory.swap.current": "30\n",
		"c/memory.peak":         "2000\n",
		"c/io.stat":             "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
		"c/cpu.max":             "20000 100000\n",
		"c/cpu.weight":          "100\n",
		"c/memory.max":          "67108864\n",
		"c/memory.swap.max":     "max\n",
		"c/memory.low":          "0\n",
		"c/pids.max":            "max\n",
		"c/cpu.pressure":        "some avg10=0.00 avg60=0.00 avg300=0.00 total=11\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5\n",
		"c/memory.pressure":     "some avg10=0.00 avg60=0.00 avg300=0.00 total=22\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=6\n",
		"c/io.pressure":         "some avg10=0.00 avg60=0.00 avg300=0.00 total=33\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
	})
	st, err := readCgroup2Stats(filepath.Join(root, "c"), ExtraCPU|ExtraMemory|ExtraOOM|ExtraIO|ExtraSpec|ExtraPressure)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"cpu", st.CPU, &CPUStats{UserNanos: 3000, SystemNanos: 2000, Periods: 10, ThrottledPeriods: 4, ThrottledNanos: 7000}},
		{"memory", st.Memory, &MemoryStats{Cache: 500, Swap: 30, MappedFile: 20, Kernel: 64, MaxUsage: 2000, Failcnt: 6, PgFault: 9, PgMajFault: 2}},
		{"oom", st.OOMKills, u64p(1)},
		{"io", st.IO, []DeviceIO{{Major: 8, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}}},
		// cpu.weight 100 is what runc writes for the default 1024 shares.
		{"spec", st.Spec, &SpecStats{CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 2 + 99*262142/9999, MemoryLimit: 64 << 20}},
		{"pressure", st.Pressure, &PressureStats{CPU: PSI{Some: 11, Full: 5}, Memory: PSI{Some: 22, Full: 6}, IO: PSI{Some: 33, Full: 7}}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %+v, want %+v", c.name, c.got, c.want)
		}
	}
}

func TestReadPressureAbsent(t *testing.T) {
	if p := readPressure2(t.TempDir()); p != nil {
		t.Errorf("pressure without PSI files: %+v", p)
	}
}

func TestReadProcesses(t *testing.T) {
	// The test's own process: it has open files (at least stdio), and a
	// socket we open here.
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	pid := strconv.Itoa(os.Getpid())
	writeFiles(t, dir, map[string]string{"cgroup.procs": pid + "\n999999999\n", "pids.max": "42\n"})
	fdsBefore, _ := countFDs(filepath.Join("/proc", pid, "fd"))
	ps := readProcesses(dir, dir)
	if ps.Processes != 2 || ps.ThreadsMax != 42 {
		t.Errorf("processes = %+v, want 2 processes (one gone) and a limit of 42", ps)
	}
	if ps.FDs == 0 || ps.FDs+2 < fdsBefore {
		t.Errorf("open files = %d, the process had %d", ps.FDs, fdsBefore)
	}
	if ps.Sockets == 0 {
		t.Errorf("no socket counted, the process listens on one")
	}
}

package cgroups

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Extra selects the figures ReadStats reads beyond the CRI's own (CPU
// time, memory usage, working set, RSS, page faults, task count). Each
// costs more files per cgroup and read, and the background refresher
// reads every cgroup every few seconds, so only what is asked is read.
type Extra uint16

const (
	// ExtraCPU reads user and system time and CFS throttling.
	ExtraCPU Extra = 1 << iota
	// ExtraMemory reads cache, swap, mapped files, kernel memory, peak
	// usage and the limit hit count.
	ExtraMemory
	// ExtraOOM reads the OOM kill count.
	ExtraOOM
	// ExtraIO reads block I/O per device.
	ExtraIO
	// ExtraProcesses reads the process count and thread limit, and counts
	// the open files and sockets of each process (a /proc walk).
	ExtraProcesses
	// ExtraSpec reads the CPU and memory limits set on the cgroup.
	ExtraSpec
	// ExtraPressure reads PSI stall totals, where the cgroup offers them
	// (cgroup v2).
	ExtraPressure
)

// Has tells whether e selects f.
func (e Extra) Has(f Extra) bool { return e&f != 0 }

// CPUStats is ExtraCPU's part of Stats.
type CPUStats struct {
	UserNanos, SystemNanos uint64
	// Periods is how many CFS enforcement periods elapsed;
	// ThrottledPeriods how many of them throttled the cgroup, for
	// ThrottledNanos in all.
	Periods, ThrottledPeriods, ThrottledNanos uint64
}

// MemoryStats is ExtraMemory's part of Stats.
type MemoryStats struct {
	Cache, Swap, MappedFile, Kernel uint64
	// MaxUsage is the peak usage (0 where the kernel does not keep it).
	MaxUsage uint64
	// Failcnt is how often usage hit the limit (v1 memory.failcnt, v2
	// the "max" event).
	Failcnt uint64
	// PgFault and PgMajFault are memory.stat's own (not total_) counters.
	PgFault, PgMajFault uint64
}

// DeviceIO is the block I/O of a cgroup on one device.
type DeviceIO struct {
	Major, Minor          uint64
	ReadBytes, WriteBytes uint64
	Reads, Writes         uint64
}

// ProcessStats is ExtraProcesses' part of Stats.
type ProcessStats struct {
	// Processes counts the cgroup's own processes (cgroup.procs), not
	// those of its descendants.
	Processes uint64
	// ThreadsMax is the pids limit; 0 when unlimited.
	ThreadsMax uint64
	// FDs and Sockets count the open files, and among them the
	// sockets, of those processes.
	FDs, Sockets uint64
}

// SpecStats is ExtraSpec's part of Stats: the limits set on the cgroup.
// A limit of 0 means none.
type SpecStats struct {
	CPUPeriod, CPUQuota, CPUShares                  uint64
	MemoryLimit, MemorySwapLimit, MemoryReservation uint64
}

// PSI is the cumulative stall time of one resource, in microseconds:
// Some while at least one task waited, Full while all did.
type PSI struct {
	Some, Full uint64
}

// PressureStats is ExtraPressure's part of Stats.
type PressureStats struct {
	CPU, Memory, IO PSI
}

// unlimitedAbove: a v1 limit this large is the kernel's "no limit"
// (PAGE_COUNTER_MAX rounded to pages), as cAdvisor reads it too.
const unlimitedAbove = uint64(1) << 62

// readExtra1 fills the figures extra selects from the v1 hierarchies under
// root. memStat is the cgroup's memory.stat, already read. A figure whose
// file is missing (controller not mounted, older kernel) stays 0.
func readExtra1(st *Stats, root, rel string, extra Extra, memStat map[string]uint64) {
	dir := func(controller string) string { return filepath.Join(root, controller, rel) }
	if extra.Has(ExtraCPU) {
		cpu := &CPUStats{}
		cpu.UserNanos, _ = readUint(filepath.Join(dir("cpuacct"), "cpuacct.usage_user"))
		cpu.SystemNanos, _ = readUint(filepath.Join(dir("cpuacct"), "cpuacct.usage_sys"))
		if m, err := readKeyed(filepath.Join(dir("cpu"), "cpu.stat")); err == nil {
			cpu.Periods, cpu.ThrottledPeriods, cpu.ThrottledNanos = m["nr_periods"], m["nr_throttled"], m["throttled_time"]
		}
		st.CPU = cpu
	}
	if extra.Has(ExtraMemory) {
		mem := &MemoryStats{
			Cache: memStat["total_cache"], Swap: memStat["total_swap"], MappedFile: memStat["total_mapped_file"],
			PgFault: memStat["pgfault"], PgMajFault: memStat["pgmajfault"],
		}
		mem.Kernel, _ = readUint(filepath.Join(dir("memory"), "memory.kmem.usage_in_bytes"))
		mem.MaxUsage, _ = readUint(filepath.Join(dir("memory"), "memory.max_usage_in_bytes"))
		mem.Failcnt, _ = readUint(filepath.Join(dir("memory"), "memory.failcnt"))
		st.Memory = mem
	}
	if extra.Has(ExtraOOM) {
		if m, err := readKeyed(filepath.Join(dir("memory"), "memory.oom_control")); err == nil {
			n := m["oom_kill"]
			st.OOMKills = &n
		}
	}
	if extra.Has(ExtraIO) {
		st.IO = readBlkio1(dir("blkio"))
	}
	if extra.Has(ExtraProcesses) {
		st.Processes = readProcesses(dir("memory"), dir("pids"))
	}
	if extra.Has(ExtraSpec) {
		spec := &SpecStats{}
		spec.CPUPeriod, _ = readUint(filepath.Join(dir("cpu"), "cpu.cfs_period_us"))
		if q, err := readInt(filepath.Join(dir("cpu"), "cpu.cfs_quota_us")); err == nil && q > 0 {
			spec.CPUQuota = uint64(q)
		}
		spec.CPUShares, _ = readUint(filepath.Join(dir("cpu"), "cpu.shares"))
		spec.MemoryLimit = readLimit(filepath.Join(dir("memory"), "memory.limit_in_bytes"))
		spec.MemorySwapLimit = readLimit(filepath.Join(dir("memory"), "memory.memsw.limit_in_bytes"))
		spec.MemoryReservation = readLimit(filepath.Join(dir("memory"), "memory.soft_limit_in_bytes"))
		st.Spec = spec
	}
	// v1 has no per-cgroup PSI: ExtraPressure leaves st.Pressure nil.
}

// readExtra2 fills the figures extra selects from the v2 cgroup dir;
// cpuStat and memStat are its cpu.stat and memory.stat, already read.
func readExtra2(st *Stats, dir string, extra Extra, cpuStat, memStat map[string]uint64) {
	file := func(name string) string { return filepath.Join(dir, name) }
	if extra.Has(ExtraCPU) {
		st.CPU = &CPUStats{
			UserNanos: cpuStat["user_usec"] * 1000, SystemNanos: cpuStat["system_usec"] * 1000,
			Periods: cpuStat["nr_periods"], ThrottledPeriods: cpuStat["nr_throttled"], ThrottledNanos: cpuStat["throttled_usec"] * 1000,
		}
	}
	var events map[string]uint64
	if extra.Has(ExtraMemory) || extra.Has(ExtraOOM) {
		events, _ = readKeyed(file("memory.events"))
	}
	if extra.Has(ExtraMemory) {
		mem := &MemoryStats{
			Cache: memStat["file"], MappedFile: memStat["file_mapped"], Kernel: memStat["kernel"],
			PgFault: memStat["pgfault"], PgMajFault: memStat["pgmajfault"], Failcnt: events["max"],
		}
		mem.Swap, _ = readUint(file("memory.swap.current"))
		mem.MaxUsage, _ = readUint(file("memory.peak"))
		st.Memory = mem
	}
	if extra.Has(ExtraOOM) && events != nil {
		n := events["oom_kill"]
		st.OOMKills = &n
	}
	if extra.Has(ExtraIO) {
		st.IO = readIOStat2(file("io.stat"))
	}
	if extra.Has(ExtraProcesses) {
		st.Processes = readProcesses(dir, dir)
	}
	if extra.Has(ExtraSpec) {
		st.Spec = readSpec2(dir)
	}
	if extra.Has(ExtraPressure) {
		st.Pressure = readPressure2(dir)
	}
}

// readBlkio1 reads the v1 throttle counters, which the kernel keeps for
// every I/O scheduler (the CFQ-only io_service files are gone since 5.0).
func readBlkio1(dir string) []DeviceIO {
	devs := map[[2]uint64]*DeviceIO{}
	var order [][2]uint64
	get := func(maj, minor uint64) *DeviceIO {
		k := [2]uint64{maj, minor}
		d := devs[k]
		if d == nil {
			d = &DeviceIO{Major: maj, Minor: minor}
			devs[k] = d
			order = append(order, k)
		}
		return d
	}
	for _, f := range []struct {
		name        string
		read, write func(*DeviceIO) *uint64
	}{
		{"blkio.throttle.io_service_bytes_recursive", func(d *DeviceIO) *uint64 { return &d.ReadBytes }, func(d *DeviceIO) *uint64 { return &d.WriteBytes }},
		{"blkio.throttle.io_serviced_recursive", func(d *DeviceIO) *uint64 { return &d.Reads }, func(d *DeviceIO) *uint64 { return &d.Writes }},
	} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line) // "8:0 Read 4096"
			if len(fields) != 3 {
				continue
			}
			maj, minor, ok := parseDevice(fields[0])
			v, err := strconv.ParseUint(fields[2], 10, 64)
			if !ok || err != nil {
				continue
			}
			switch fields[1] {
			case "Read":
				*f.read(get(maj, minor)) = v
			case "Write":
				*f.write(get(maj, minor)) = v
			}
		}
	}
	out := make([]DeviceIO, 0, len(order))
	for _, k := range order {
		out = append(out, *devs[k])
	}
	return out
}

// readIOStat2 reads io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...".
func readIOStat2(file string) []DeviceIO {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var out []DeviceIO
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		maj, minor, ok := parseDevice(fields[0])
		if !ok {
			continue
		}
		d := DeviceIO{Major: maj, Minor: minor}
		for _, kv := range fields[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				d.ReadBytes = n
			case "wbytes":
				d.WriteBytes = n
			case "rios":
				d.Reads = n
			case "wios":
				d.Writes = n
			}
		}
		out = append(out, d)
	}
	return out
}

func parseDevice(s string) (maj, minor uint64, ok bool) {
	a, b, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 64)
	minor, err2 := strconv.ParseUint(b, 10, 64)
	return maj, minor, err1 == nil && err2 == nil
}

// readProcesses counts the processes listed in procsDir/cgroup.procs and
// their open files and sockets; pidsDir holds pids.max.
func readProcesses(procsDir, pidsDir string) *ProcessStats {
	ps := &ProcessStats{ThreadsMax: readLimit(filepath.Join(pidsDir, "pids.max"))}
	b, err := os.ReadFile(filepath.Join(procsDir, "cgroup.procs"))
	if err != nil {
		return ps
	}
	for _, pid := range strings.Fields(string(b)) {
		ps.Processes++
		fds, sockets := countFDs(filepath.Join("/proc", pid, "fd"))
		ps.FDs += fds
		ps.Sockets += sockets
	}
	return ps
}

// countFDs counts the entries of a /proc/<pid>/fd and those that are
// sockets. A process that exits meanwhile counts nothing.
func countFDs(dir string) (fds, sockets uint64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, e := range entries {
		fds++
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
			sockets++
		}
	}
	return fds, sockets
}

// readSpec2 reads the v2 limits, converting cpu.weight back to the v1
// shares the CRI and cAdvisor speak (the inverse of runc's conversion).
func readSpec2(dir string) *SpecStats {
	spec := &SpecStats{}
	if b, err := os.ReadFile(filepath.Join(dir, "cpu.max")); err == nil {
		// "max 100000" or "50000 100000"
		if quota, period, ok := strings.Cut(strings.TrimSpace(string(b)), " "); ok {
			spec.CPUPeriod, _ = strconv.ParseUint(period, 10, 64)
			spec.CPUQuota, _ = strconv.ParseUint(quota, 10, 64)
		}
	}
	if w, err := readUint(filepath.Join(dir, "cpu.weight")); err == nil && w > 0 {
		spec.CPUShares = 2 + (w-1)*262142/9999
	}
	spec.MemoryLimit = readLimit(filepath.Join(dir, "memory.max"))
	spec.MemorySwapLimit = readLimit(filepath.Join(dir, "memory.swap.max"))
	spec.MemoryReservation = readLimit(filepath.Join(dir, "memory.low"))
	return spec
}

// readPressure2 reads cpu.pressure, memory.pressure and io.pressure; nil
// when the kernel offers none (PSI disabled).
func readPressure2(dir string) *PressureStats {
	p := &PressureStats{}
	found := false
	for _, f := range []struct {
		name string
		psi  *PSI
	}{{"cpu.pressure", &p.CPU}, {"memory.pressure", &p.Memory}, {"io.pressure", &p.IO}} {
		if readPSI(filepath.Join(dir, f.name), f.psi) == nil {
			found = true
		}
	}
	if !found {
		return nil
	}
	return p
}

// readPSI reads the totals of a pressure file:
// "some avg10=0.00 avg60=0.00 avg300=0.00 total=123".
func readPSI(file string, psi *PSI) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		var total uint64
		for _, kv := range fields[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				total, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		switch fields[0] {
		case "some":
			psi.Some = total
		case "full":
			psi.Full = total
		}
	}
	return sc.Err()
}

// readLimit reads a limit file: "max", a missing file or a v1 value
// meaning no limit all read 0.
func readLimit(file string) uint64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n > unlimitedAbove {
		return 0
	}
	return n
}

func readInt(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats is the resource usage of one cgroup (a container's or a pod's).
type Stats struct {
	Timestamp time.Time
	// CPUUsageNanos is the cumulative CPU time of every task.
	CPUUsageNanos uint64
	// MemoryUsage is what the kernel charges the cgroup, page cache
	// included; MemoryWorkingSet leaves out the inactive file cache, the
	// kubelet's eviction signal.
	MemoryUsage, MemoryWorkingSet, MemoryRSS uint64
	PageFaults, MajorPageFaults              uint64
	// Pids is how many tasks the cgroup holds.
	Pids uint64

	// The figures below are read only when ReadStats is asked for them
	// (see Extra); nil when not asked or not offered by the cgroup.
	CPU       *CPUStats
	Memory    *MemoryStats
	OOMKills  *uint64
	IO        []DeviceIO
	Processes *ProcessStats
	Spec      *SpecStats
	Pressure  *PressureStats
}

// ReadStats reads the usage of the cgroup at an OCI cgroupsPath
// (cgroupfs path or systemd "slice:prefix:name"). Runtimes use cgroup v1
// on hybrid hosts, so only a unified-only host is read as v2.
//
// Without extra it reads the four files the CRI's figures come from and
// nothing else: the background refresher samples every container and pod,
// and a full cgroup Stat opens about 25 files per cgroup, which with 500
// containers took over half a CPU-second per round.
func ReadStats(cgroupsPath string, extra Extra) (*Stats, error) {
	rel := RelPath(cgroupsPath)
	var st *Stats
	var err error
	if unifiedOnly() {
		st, err = readCgroup2Stats(filepath.Join(Root, rel), extra)
	} else {
		st, err = readCgroup1Stats(Root, rel, extra)
	}
	if err != nil {
		return nil, fmt.Errorf("read cgroup %s: %w", rel, err)
	}
	return st, nil
}

// readCgroup1Stats reads the cgroup rel of the v1 hierarchies under root.
func readCgroup1Stats(root, rel string, extra Extra) (*Stats, error) {
	st := &Stats{Timestamp: time.Now()}
	cpu, err := readUint(filepath.Join(root, "cpuacct", rel, "cpuacct.usage"))
	if err != nil {
		return nil, err
	}
	st.CPUUsageNanos = cpu
	memDir := filepath.Join(root, "memory", rel)
	if st.MemoryUsage, err = readUint(filepath.Join(memDir, "memory.usage_in_bytes")); err != nil {
		return nil, err
	}
	stat, err := readKeyed(filepath.Join(memDir, "memory.stat"))
	if err != nil {
		return nil, err
	}
	st.MemoryWorkingSet = workingSet(st.MemoryUsage, stat["total_inactive_file"])
	st.MemoryRSS = stat["total_rss"]
	st.PageFaults, st.MajorPageFaults = stat["total_pgfault"], stat["total_pgmajfault"]
	st.Pids = readPids(filepath.Join(root, "pids", rel))
	readExtra1(st, root, rel, extra, stat)
	return st, nil
}

func readCgroup2Stats(dir string, extra Extra) (*Stats, error) {
	st := &Stats{Timestamp: time.Now()}
	cpu, err := readKeyed(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return nil, err
	}
	st.CPUUsageNanos = cpu["usage_usec"] * 1000
	if st.MemoryUsage, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		return nil, err
	}
	stat, err := readKeyed(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return nil, err
	}
	st.MemoryWorkingSet = workingSet(st.MemoryUsage, stat["inactive_file"])
	st.MemoryRSS = stat["anon"]
	st.PageFaults, st.MajorPageFaults = stat["pgfault"], stat["pgmajfault"]
	st.Pids = readPids(dir)
	readExtra2(st, dir, extra, cpu, stat)
	return st, nil
}

// OOMKills is how many tasks the kernel's OOM killer has killed in the
// cgroup at an OCI cgroupsPath: "oom_kill" of memory.oom_control (v1) or
// memory.events (v2). A missing cgroup counts 0.
func OOMKills(cgroupsPath string) uint64 {
	rel := RelPath(cgroupsPath)
	file := filepath.Join(Root, "memory", rel, "memory.oom_control")
	if unifiedOnly() {
		file = filepath.Join(Root, rel, "memory.events")
	}
	m, err := readKeyed(file)
	if err != nil {
		return 0
	}
	return m["oom_kill"]
}

// readPids is the pids controller's task count; 0 where the controller
// is not enabled for the cgroup.
func readPids(dir string) uint64 {
	n, _ := readUint(filepath.Join(dir, "pids.current"))
	return n
}

func readUint(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", file, err)
	}
	return n, nil
}

// readKeyed reads a flat-keyed cgroup file ("key value" lines).
func readKeyed(file string) (map[string]uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// workingSet is usage minus inactive file cache, as cAdvisor computes it.
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile > usage {
		return 0
	}
	return usage - inactiveFile
}

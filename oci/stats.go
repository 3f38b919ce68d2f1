package oci

import (
	"fmt"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
)

// cgroupRoot is where the hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// CgroupStats is the resource usage of one cgroup (a container's or a pod's).
type CgroupStats struct {
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
}

// ReadCgroupStats reads the usage of the cgroup at an OCI cgroupsPath
// (cgroupfs path or systemd "slice:prefix:name"). Runtimes use cgroup v1
// on hybrid hosts, so only a unified-only host is read as v2.
func ReadCgroupStats(cgroupsPath string) (*CgroupStats, error) {
	rel := CgroupRelPath(cgroupsPath)
	if cgroups.Mode() == cgroups.Unified {
		return readCgroup2Stats(rel)
	}
	return readCgroup1Stats(rel)
}

// statsHierarchy limits cgroup v1 to the controllers stats come from,
// so that loading does not touch the others.
func statsHierarchy() ([]cgroup1.Subsystem, error) {
	return []cgroup1.Subsystem{
		cgroup1.NewCpuacct(cgroupRoot),
		cgroup1.NewMemory(cgroupRoot),
		cgroup1.NewPids(cgroupRoot),
	}, nil
}

func readCgroup1Stats(rel string) (*CgroupStats, error) {
	cg, err := cgroup1.Load(cgroup1.StaticPath(rel), cgroup1.WithHierarchy(statsHierarchy))
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", rel, err)
	}
	m, err := cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, fmt.Errorf("read cgroup %s: %w", rel, err)
	}
	st := &CgroupStats{Timestamp: time.Now()}
	if m.CPU != nil && m.CPU.Usage != nil {
		st.CPUUsageNanos = m.CPU.Usage.Total
	}
	if mem := m.Memory; mem != nil {
		if mem.Usage != nil {
			st.MemoryUsage = mem.Usage.Usage
		}
		st.MemoryWorkingSet = workingSet(st.MemoryUsage, mem.TotalInactiveFile)
		st.MemoryRSS = mem.TotalRSS
		st.PageFaults, st.MajorPageFaults = mem.TotalPgFault, mem.TotalPgMajFault
	}
	if m.Pids != nil {
		st.Pids = m.Pids.Current
	}
	return st, nil
}

func readCgroup2Stats(rel string) (*CgroupStats, error) {
	cg, err := cgroup2.Load(rel)
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", rel, err)
	}
	m, err := cg.Stat()
	if err != nil {
		return nil, fmt.Errorf("read cgroup %s: %w", rel, err)
	}
	st := &CgroupStats{Timestamp: time.Now()}
	if m.CPU != nil {
		st.CPUUsageNanos = m.CPU.UsageUsec * 1000
	}
	if mem := m.Memory; mem != nil {
		st.MemoryUsage = mem.Usage
		st.MemoryWorkingSet = workingSet(mem.Usage, mem.InactiveFile)
		st.MemoryRSS = mem.Anon
		st.PageFaults, st.MajorPageFaults = mem.Pgfault, mem.Pgmajfault
	}
	if m.Pids != nil {
		st.Pids = m.Pids.Current
	}
	return st, nil
}

// workingSet is usage minus inactive file cache, as cAdvisor computes it.
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile > usage {
		return 0
	}
	return usage - inactiveFile
}

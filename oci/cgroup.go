package oci

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// setResources maps the CRI resources onto the spec. oom_score_adj below
// what this daemon may set is clamped (and logged) rather than failed.
func setResources(s *specs.Spec, r *runtime.LinuxContainerResources, host *HostInfo) error {
	adj, err := OOMScoreAdj(int(r.GetOomScoreAdj()), host)
	if err != nil {
		return err
	}
	s.Process.OOMScoreAdj = &adj
	res, err := Resources(r, *host)
	if err != nil {
		return err
	}
	res.Devices = s.Linux.Resources.Devices
	s.Linux.Resources = res
	return nil
}

// OOMScoreAdj checks an oom_score_adj and clamps it to the lowest value
// the host lets this daemon give (HostInfo.OOMScoreAdjMin).
func OOMScoreAdj(adj int, host *HostInfo) (int, error) {
	if adj < -1000 || adj > 1000 {
		return 0, invalidf("oom_score_adj %d is outside [-1000, 1000]", adj)
	}
	if adj < host.OOMScoreAdjMin {
		klog.V(2).InfoS("Clamping oom_score_adj to what the host allows", "requested", adj, "used", host.OOMScoreAdjMin)
		adj = host.OOMScoreAdjMin
	}
	return adj, nil
}

// Resources converts CRI container resources into their OCI form: for the
// spec, and for `runc update --resources` (UpdateContainerResources).
// Device rules and oom_score_adj are not part of it. Hugepage limits are
// left out when the host has no usable hugetlb controller (host.Hugetlb).
func Resources(r *runtime.LinuxContainerResources, host HostInfo) (*specs.LinuxResources, error) {
	res := &specs.LinuxResources{}
	if r == nil {
		return res, nil
	}
	cpu := &specs.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()}
	if r.GetCpuShares() < 0 || r.GetCpuPeriod() < 0 || r.GetMemoryLimitInBytes() < 0 || r.GetMemorySwapLimitInBytes() < 0 {
		return nil, invalidf("negative cpu shares/period or memory limits")
	}
	if v := uint64(r.GetCpuShares()); v > 0 {
		cpu.Shares = &v
	}
	if v := r.GetCpuQuota(); v != 0 {
		cpu.Quota = &v
	}
	if v := uint64(r.GetCpuPeriod()); v > 0 {
		cpu.Period = &v
	}
	if err := checkCPUList(cpu.Cpus, "cpuset_cpus"); err != nil {
		return nil, err
	}
	if err := checkCPUList(cpu.Mems, "cpuset_mems"); err != nil {
		return nil, err
	}
	if *cpu != (specs.LinuxCPU{}) {
		res.CPU = cpu
	}
	mem := &specs.LinuxMemory{}
	if v := r.GetMemoryLimitInBytes(); v > 0 {
		mem.Limit = &v
	}
	if v := r.GetMemorySwapLimitInBytes(); v > 0 {
		if mem.Limit != nil && v < *mem.Limit {
			return nil, invalidf("memory+swap limit %d is below the memory limit %d", v, *mem.Limit)
		}
		mem.Swap = &v
	}
	if mem.Limit != nil || mem.Swap != nil {
		res.Memory = mem
	}
	for _, h := range r.GetHugepageLimits() {
		if h == nil {
			continue
		}
		if !validPageSize(h.GetPageSize()) {
			return nil, invalidf("hugepage size %q is not like 2MB or 1GB", h.GetPageSize())
		}
		res.HugepageLimits = append(res.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	if len(res.HugepageLimits) > 0 && !host.Hugetlb {
		// The kubelet sends a limit (often 0) for every page size the node
		// has; without a usable hugetlb controller the runtime would fail
		// the container, so the limits are left out.
		klog.V(2).InfoS("Leaving out hugepage limits: no usable hugetlb cgroup controller", "limits", len(res.HugepageLimits))
		res.HugepageLimits = nil
	}
	for k, v := range r.GetUnified() {
		if k == "" || strings.ContainsAny(k, "/\x00") || strings.ContainsRune(v, 0) {
			return nil, invalidf("unified cgroup key %q is not a cgroup file name", k)
		}
		if res.Unified == nil {
			res.Unified = map[string]string{}
		}
		res.Unified[k] = v
	}
	return res, nil
}

// checkCPUList accepts the kernel's list format: "0-3,5,7-8".
func checkCPUList(s, field string) error {
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isDigits(lo) || (isRange && !isDigits(hi)) {
			return invalidf("%s %q is not a list like 0-3,5", field, s)
		}
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" || len(s) > 6 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validPageSize accepts "<digits><K|M|G|T|P>B", the form of
// /sys/fs/cgroup/hugetlb/hugetlb.<size>.limit_in_bytes file names.
func validPageSize(s string) bool {
	if len(s) < 3 || !strings.HasSuffix(s, "B") {
		return false
	}
	unit := s[len(s)-2]
	return strings.IndexByte("KMGTP", unit) >= 0 && isDigits(s[:len(s)-2])
}

package sandbox

import (
	"fmt"
	"path"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/oci"
)

// podCgroup picks the pod cgroup in the driver's form. The kubelet passes
// the pod-level cgroup it made as cgroup_parent, so that is the pod cgroup;
// without one the pod gets its own under the daemon's default parent.
func podCgroup(driver cgroups.Driver, parent, podID string) (string, error) {
	if parent != "" {
		// Validated as a parent of a container ID; the same rules apply.
		if _, err := driver.Path(parent, "x"); err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return parent, nil
	}
	if driver == cgroups.Systemd {
		return "criserver-pod" + podID + ".slice", nil
	}
	return path.Join(cgroups.DefaultCgroupfsParent, "pod"+podID), nil
}

// createCgroup creates (or updates) the pod cgroup with the pod's limits:
// its resources plus its overhead (cfg may be nil: no limits).
func createCgroup(rel string, cfg *runtime.LinuxPodSandboxConfig) error {
	res, err := oci.Resources(podLimits(cfg.GetResources(), cfg.GetOverhead()), oci.HostInfo{})
	if err != nil {
		return fmt.Errorf("%w: pod resources: %w", ErrInvalid, err)
	}
	return cgroups.Create(rel, res)
}

// podLimits adds the pod overhead to the pod's resources, which the
// kubelet computes without it (its own pod cgroup has both): CPU shares,
// and the CPU quota (in res's period) and memory limit where res sets one.
func podLimits(res, overhead *runtime.LinuxContainerResources) *runtime.LinuxContainerResources {
	if res == nil || overhead == nil {
		return res
	}
	out := proto.Clone(res).(*runtime.LinuxContainerResources)
	if out.CpuShares > 0 {
		out.CpuShares += overhead.CpuShares
	}
	if out.CpuQuota > 0 && overhead.CpuQuota > 0 {
		q := overhead.CpuQuota
		if out.CpuPeriod > 0 && overhead.CpuPeriod > 0 {
			q = q * out.CpuPeriod / overhead.CpuPeriod
		}
		out.CpuQuota += q
	}
	if out.MemoryLimitInBytes > 0 {
		out.MemoryLimitInBytes += overhead.MemoryLimitInBytes
	}
	return out
}

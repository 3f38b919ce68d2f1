package sandbox

import (
	"fmt"
	"path"

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

// createCgroup creates (or updates) the pod cgroup with the pod's
// resources; they already include the pod overhead.
func createCgroup(rel string, r *runtime.LinuxContainerResources) error {
	res, err := oci.Resources(r, oci.HostInfo{})
	if err != nil {
		return fmt.Errorf("%w: pod resources: %w", ErrInvalid, err)
	}
	return cgroups.Create(rel, res)
}

package sandbox

import (
	"context"
	"fmt"

	"github.com/criserver/criserver/cgroups"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateResources applies new pod-level resources (the sum of the
// containers' and the overhead) to the pod cgroup, as an in-place pod
// resize asks, and records them.
func (m *Manager) UpdateResources(_ context.Context, id string, overhead, res *runtime.LinuxContainerResources) error {
	l := m.podLock(id)
	l.Lock()
	defer l.Unlock()
	sb, err := m.Get(id)
	if err != nil {
		return err
	}
	if res != nil {
		if err := createCgroup(cgroups.RelPath(sb.CgroupParent), res); err != nil {
			return fmt.Errorf("update pod %s resources: %w", id, err)
		}
	}
	cfg := proto.Clone(sb.Config).(*runtime.PodSandboxConfig)
	if cfg.Linux == nil {
		cfg.Linux = &runtime.LinuxPodSandboxConfig{}
	}
	if res != nil {
		cfg.Linux.Resources = res
	}
	if overhead != nil {
		cfg.Linux.Overhead = overhead
	}
	sb.Config = cfg
	if err := m.writeRecord(sb, false); err != nil {
		return err
	}
	m.update(sb)
	return nil
}

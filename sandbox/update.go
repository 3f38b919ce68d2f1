package sandbox

import (
	"context"
	"fmt"

	"github.com/criserver/criserver/cgroups"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateResources records new pod-level resources and overhead, as an
// in-place pod resize sends them, and applies them to a pod cgroup this
// daemon made; the kubelet has already resized a pod cgroup of its own.
func (m *Manager) UpdateResources(_ context.Context, id string, overhead, res *runtime.LinuxContainerResources) error {
	l := m.podLock(id)
	l.Lock()
	defer l.Unlock()
	sb, err := m.Get(id)
	if err != nil {
		return err
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
	if res != nil && sb.CgroupCreated {
		if err := createCgroup(cgroups.RelPath(sb.CgroupParent), cfg.Linux); err != nil {
			return fmt.Errorf("update pod %s resources: %w", id, err)
		}
	}
	sb.Config = cfg
	if err := m.writeRecord(sb, false); err != nil {
		return err
	}
	m.update(sb)
	return nil
}

package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/nri"
	"github.com/criserver/criserver/sandbox"
)

// nriView is what NRI plugins see of c.
func (c *containerRecord) nriView() nri.Container {
	st := c.Status()
	return nri.Container{
		ID: c.ID, PodID: c.PodID, Config: c.Config, State: st.State, Pid: st.Pid,
		CgroupsPath: c.CgroupsPath, CreatedAt: c.CreatedAt, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
		ExitCode: st.ExitCode, Reason: st.Reason, Message: st.Message, Resources: st.Resources,
	}
}

// nriPod is the pod of a container for NRI; a pod already gone is named
// by its ID only.
func (s *Service) nriPod(podID string) *sandbox.Sandbox {
	sb, err := s.opts.Sandboxes.Get(podID)
	if err != nil {
		return &sandbox.Sandbox{ID: podID, Config: &runtime.PodSandboxConfig{}}
	}
	return sb
}

// nriStopped tells NRI plugins that c stopped; they hear it once.
func (s *Service) nriStopped(c *containerRecord) {
	s.opts.NRI.StopContainer(context.Background(), s.nriPod(c.PodID), c.nriView())
}

// nriStopPod tells NRI plugins that a ready pod stops; a second Stop of a
// stopped pod tells them nothing.
func (s *Service) nriStopPod(ctx context.Context, sb *sandbox.Sandbox) {
	if sb.State == sandbox.StateReady {
		s.opts.NRI.StopPodSandbox(ctx, sb)
	}
}

// NRIRuntime is the daemon's side of NRI: what plugins synchronize with,
// and how their updates and evictions are carried out.
func (s *Service) NRIRuntime() nri.Runtime { return nriRuntime{s} }

type nriRuntime struct{ s *Service }

func (r nriRuntime) Snapshot() ([]*sandbox.Sandbox, []nri.Container) {
	pods := r.s.opts.Sandboxes.List()
	var ctrs []nri.Container
	for _, c := range r.s.containers.list() {
		ctrs = append(ctrs, c.nriView())
	}
	return pods, ctrs
}

func (r nriRuntime) Container(id string) (nri.Container, error) {
	c, err := r.s.containers.get(id)
	if err != nil {
		return nri.Container{}, err
	}
	return c.nriView(), nil
}

func (r nriRuntime) UpdateResources(ctx context.Context, id string, res *runtime.LinuxContainerResources) error {
	c, err := r.s.containers.get(id)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if err := r.s.updatable(c); err != nil {
		return err
	}
	return r.s.setResources(ctx, c, res)
}

func (r nriRuntime) Evict(ctx context.Context, id, reason string) error {
	c, err := r.s.containers.get(id)
	if err != nil {
		return err
	}
	if err := r.s.stopContainer(ctx, c, 0); err != nil {
		return fmt.Errorf("evict container %s (%s): %w", id, reason, err)
	}
	return nil
}

// updatable refuses to update a container that no longer runs.
func (s *Service) updatable(c *containerRecord) error {
	s.refreshContainer(c)
	switch c.State() {
	case runtime.ContainerState_CONTAINER_CREATED, runtime.ContainerState_CONTAINER_RUNNING:
		return nil
	}
	return fmt.Errorf("%w: container %s is not running", errFailedPrecondition, c.ID)
}

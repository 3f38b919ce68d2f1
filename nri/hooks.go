package nri

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/nri/pkg/adaptation"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/sandbox"
)

// Hooks that can refuse (RunPodSandbox, CreateContainer, StartContainer,
// UpdateContainer) return the plugins' error, and the CRI call fails with
// it. The others report what already happened; a plugin error there is
// logged, as the pod or container cannot be brought back.

// RunPodSandbox tells plugins about a pod that is made but not yet listed.
func (h *Host) RunPodSandbox(ctx context.Context, sb *sandbox.Sandbox) error {
	if !h.active() {
		return nil
	}
	if err := h.nri.RunPodSandbox(ctx, &adaptation.RunPodSandboxRequest{Pod: podView(sb)}); err != nil {
		return fmt.Errorf("NRI RunPodSandbox of pod %s: %w", sb.ID, err)
	}
	return nil
}

// StopPodSandbox tells plugins that a ready pod is stopping; its
// containers have stopped.
func (h *Host) StopPodSandbox(ctx context.Context, sb *sandbox.Sandbox) {
	if !h.active() {
		return
	}
	if err := h.nri.StopPodSandbox(ctx, &adaptation.StopPodSandboxRequest{Pod: podView(sb)}); err != nil {
		klog.ErrorS(err, "NRI StopPodSandbox", "pod", sb.ID)
	}
}

// RemovePodSandbox tells plugins that a pod is gone.
func (h *Host) RemovePodSandbox(ctx context.Context, sb *sandbox.Sandbox) {
	if !h.active() {
		return
	}
	if err := h.nri.RemovePodSandbox(ctx, &adaptation.RemovePodSandboxRequest{Pod: podView(sb)}); err != nil {
		klog.ErrorS(err, "NRI RemovePodSandbox", "pod", sb.ID)
	}
}

// CreateContainer asks plugins about a container whose spec is generated
// but not yet written, applies their adjustments to spec, and carries out
// the updates and evictions of other containers they ask for.
func (h *Host) CreateContainer(ctx context.Context, sb *sandbox.Sandbox, c Container, spec *specs.Spec, host *oci.HostInfo) error {
	if !h.active() {
		return nil
	}
	c.Spec = spec
	resp, err := h.nri.CreateContainer(ctx, &adaptation.CreateContainerRequest{Pod: podView(sb), Container: containerView(c)})
	if err != nil {
		return fmt.Errorf("NRI CreateContainer of container %s: %w", c.ID, err)
	}
	if names := rlimitNames(resp.GetAdjust()); len(names) > 0 {
		klog.ErrorS(nil, "Not applying the rlimits NRI plugins asked for: the OCI runtime fails on this host when process.rlimits is set", "containerID", c.ID, "rlimits", names)
	}
	if err := ApplyAdjustment(spec, resp.GetAdjust(), host); err != nil {
		return fmt.Errorf("NRI adjustment of container %s: %w", c.ID, err)
	}
	h.applyUpdates(ctx, resp.GetUpdate())
	h.evict(ctx, resp.GetEvict())
	return nil
}

// PostCreateContainer tells plugins that a container was created.
func (h *Host) PostCreateContainer(ctx context.Context, sb *sandbox.Sandbox, c Container) {
	if !h.active() {
		return
	}
	if err := h.nri.PostCreateContainer(ctx, &adaptation.PostCreateContainerRequest{Pod: podView(sb), Container: containerView(c)}); err != nil {
		klog.ErrorS(err, "NRI PostCreateContainer", "containerID", c.ID)
	}
}

// StartContainer tells plugins that a container is about to start.
func (h *Host) StartContainer(ctx context.Context, sb *sandbox.Sandbox, c Container) error {
	if !h.active() {
		return nil
	}
	if err := h.nri.StartContainer(ctx, &adaptation.StartContainerRequest{Pod: podView(sb), Container: containerView(c)}); err != nil {
		return fmt.Errorf("NRI StartContainer of container %s: %w", c.ID, err)
	}
	return nil
}

// PostStartContainer tells plugins that a container started.
func (h *Host) PostStartContainer(ctx context.Context, sb *sandbox.Sandbox, c Container) {
	if !h.active() {
		return
	}
	if err := h.nri.PostStartContainer(ctx, &adaptation.PostStartContainerRequest{Pod: podView(sb), Container: containerView(c)}); err != nil {
		klog.ErrorS(err, "NRI PostStartContainer", "containerID", c.ID)
	}
}

// UpdateContainer asks plugins about new resources for a container. It
// returns the resources to set, which a plugin may have changed, and
// carries out the updates and evictions of other containers they ask for.
func (h *Host) UpdateContainer(ctx context.Context, sb *sandbox.Sandbox, c Container, r *runtime.LinuxContainerResources) (*runtime.LinuxContainerResources, error) {
	if !h.active() {
		return r, nil
	}
	resp, err := h.nri.UpdateContainer(ctx, &adaptation.UpdateContainerRequest{
		Pod: podView(sb), Container: containerView(c), LinuxResources: fromCRIResources(r),
	})
	if err != nil {
		return nil, fmt.Errorf("NRI UpdateContainer of container %s: %w", c.ID, err)
	}
	var others []*adaptation.ContainerUpdate
	for _, u := range resp.GetUpdate() {
		if u.GetContainerId() != c.ID {
			others = append(others, u)
			continue
		}
		if r, err = criResources(r, u.GetLinux().GetResources()); err != nil {
			return nil, fmt.Errorf("NRI update of container %s: %w", c.ID, err)
		}
	}
	h.applyUpdates(ctx, others)
	h.evict(ctx, resp.GetEvict())
	return r, nil
}

// PostUpdateContainer tells plugins that a container's resources changed.
func (h *Host) PostUpdateContainer(ctx context.Context, sb *sandbox.Sandbox, c Container) {
	if !h.active() {
		return
	}
	if err := h.nri.PostUpdateContainer(ctx, &adaptation.PostUpdateContainerRequest{Pod: podView(sb), Container: containerView(c)}); err != nil {
		klog.ErrorS(err, "NRI PostUpdateContainer", "containerID", c.ID)
	}
}

// StopContainer tells plugins, once per container, that it stopped,
// however the stop came about.
func (h *Host) StopContainer(ctx context.Context, sb *sandbox.Sandbox, c Container) {
	if !h.active() {
		return
	}
	h.stopOnce(c.ID).Do(func() {
		resp, err := h.nri.StopContainer(ctx, &adaptation.StopContainerRequest{Pod: podView(sb), Container: containerView(c)})
		if err != nil {
			klog.ErrorS(err, "NRI StopContainer", "containerID", c.ID)
			return
		}
		if len(resp.GetUpdate()) > 0 {
			// The caller may hold this container's lock; another
			// container's update must not wait on it.
			go h.applyUpdates(context.WithoutCancel(ctx), resp.GetUpdate())
		}
	})
}

// RemoveContainer tells plugins that a container is gone, after its stop.
func (h *Host) RemoveContainer(ctx context.Context, sb *sandbox.Sandbox, c Container) {
	if !h.active() {
		return
	}
	h.StopContainer(ctx, sb, c)
	if err := h.nri.RemoveContainer(ctx, &adaptation.RemoveContainerRequest{Pod: podView(sb), Container: containerView(c)}); err != nil {
		klog.ErrorS(err, "NRI RemoveContainer", "containerID", c.ID)
	}
	h.mu.Lock()
	delete(h.stopped, c.ID)
	h.mu.Unlock()
}

func (h *Host) stopOnce(id string) *sync.Once {
	h.mu.Lock()
	defer h.mu.Unlock()
	o, ok := h.stopped[id]
	if !ok {
		o = &sync.Once{}
		h.stopped[id] = o
	}
	return o
}

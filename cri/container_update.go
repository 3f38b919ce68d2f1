package cri

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/oci"
)

// UpdateContainerResources implements runtime.RuntimeServiceServer: it
// changes the live cgroup and what ContainerStatus reports.
func (s *Service) UpdateContainerResources(ctx context.Context, req *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r := req.GetLinux()
	if r == nil {
		return &runtime.UpdateContainerResourcesResponse{}, nil
	}
	if _, err := oci.Resources(r, *s.host()); err != nil {
		return nil, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if err := s.updatable(c); err != nil {
		return nil, err
	}
	pod := s.nriPod(c.PodID)
	if r, err = s.opts.NRI.UpdateContainer(ctx, pod, c.nriView(), r); err != nil {
		return nil, err
	}
	if err := s.setResources(ctx, c, r); err != nil {
		return nil, err
	}
	s.opts.NRI.PostUpdateContainer(ctx, pod, c.nriView())
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

// setResources sets the live cgroup limits of c and records them; the
// caller holds c.op.
func (s *Service) setResources(ctx context.Context, c *containerRecord, r *runtime.LinuxContainerResources) error {
	res, err := oci.Resources(r, *s.host())
	if err != nil {
		return err
	}
	if err := s.opts.Runtime.UpdateResources(ctx, c.Handler, c.ID, res); err != nil {
		return fmt.Errorf("update resources of container %s: %w", c.ID, err)
	}
	err = s.containers.update(c, func(st *containerStatus) error {
		// oom_score_adj is fixed at creation; keep reporting the one in force.
		updated := proto.Clone(r).(*runtime.LinuxContainerResources)
		updated.OomScoreAdj = st.Resources.GetOomScoreAdj()
		st.Resources = updated
		return nil
	})
	if err != nil {
		klog.ErrorS(err, "Save updated container", "containerID", c.ID)
	}
	return nil
}

// ReopenContainerLog implements runtime.RuntimeServiceServer: conmon
// reopens the log file after the kubelet rotated it.
func (s *Service) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	s.refreshContainer(c)
	if c.State() != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("%w: container %s is not running", errFailedPrecondition, c.ID)
	}
	if err := s.opts.Runtime.ReopenLog(ctx, c.ID, c.LogPath); err != nil {
		return nil, err
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}

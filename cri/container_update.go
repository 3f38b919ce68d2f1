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
	c, err := s.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r := req.GetLinux()
	if r == nil {
		return &runtime.UpdateContainerResourcesResponse{}, nil
	}
	res, err := oci.Resources(r, *s.host())
	if err != nil {
		return nil, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	s.refreshContainer(c)
	switch c.State() {
	case runtime.ContainerState_CONTAINER_CREATED, runtime.ContainerState_CONTAINER_RUNNING:
	default:
		return nil, fmt.Errorf("%w: container %s is not running", errFailedPrecondition, c.ID)
	}
	if err := s.opts.Runtime.UpdateResources(ctx, c.Handler, c.ID, res); err != nil {
		return nil, fmt.Errorf("update resources of container %s: %w", c.ID, err)
	}
	c.mu.Lock()
	// oom_score_adj is fixed at creation; keep reporting the one in force.
	updated := proto.Clone(r).(*runtime.LinuxContainerResources)
	updated.OomScoreAdj = c.resources.GetOomScoreAdj()
	c.resources = updated
	c.mu.Unlock()
	if err := s.saveContainer(c); err != nil {
		klog.ErrorS(err, "Save updated container", "containerID", c.ID)
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog implements runtime.RuntimeServiceServer: conmon
// reopens the log file after the kubelet rotated it.
func (s *Service) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	c, err := s.getContainer(req.GetContainerId())
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

package cri

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/sandbox"
)

// sandboxError maps a sandbox package error onto its gRPC code.
func sandboxError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sandbox.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, sandbox.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, cni.ErrNotReady):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

// RunPodSandbox implements runtime.RuntimeServiceServer.
func (s *Service) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	// The NRI RunPodSandbox hook runs inside Run, before the pod is listed.
	unblockNRI := s.opts.NRI.BlockSync()
	sb, err := s.opts.Sandboxes.Run(ctx, req.GetConfig(), req.GetRuntimeHandler())
	unblockNRI()
	if err != nil {
		return nil, sandboxError(err)
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: sb.ID}, nil
}

// StopPodSandbox implements runtime.RuntimeServiceServer. The pod's
// containers are stopped first; an unknown pod is already stopped.
func (s *Service) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "pod sandbox ID is required")
	}
	sb, err := s.opts.Sandboxes.Get(id)
	if errors.Is(err, sandbox.ErrNotFound) {
		return &runtime.StopPodSandboxResponse{}, nil
	}
	if err := s.stopPodContainers(ctx, id); err != nil {
		return nil, status.Errorf(codes.Unknown, "stop containers of pod %s: %v", id, err)
	}
	s.nriStopPod(ctx, sb)
	if err := s.opts.Sandboxes.Stop(ctx, id); err != nil {
		return nil, sandboxError(err)
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox implements runtime.RuntimeServiceServer. The pod's
// containers are removed first; an unknown pod is already removed.
func (s *Service) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "pod sandbox ID is required")
	}
	sb, err := s.opts.Sandboxes.Get(id)
	if errors.Is(err, sandbox.ErrNotFound) {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	if err := s.removePodContainers(ctx, id); err != nil {
		return nil, status.Errorf(codes.Unknown, "remove containers of pod %s: %v", id, err)
	}
	s.nriStopPod(ctx, sb)
	if err := s.opts.Sandboxes.Remove(ctx, id); err != nil {
		return nil, sandboxError(fmt.Errorf("remove pod %s: %w", id, err))
	}
	s.opts.NRI.RemovePodSandbox(ctx, sb)
	return &runtime.RemovePodSandboxResponse{}, nil
}

// UpdatePodSandboxResources implements runtime.RuntimeServiceServer: an
// in-place pod resize sets the pod cgroup's limits.
func (s *Service) UpdatePodSandboxResources(ctx context.Context, req *runtime.UpdatePodSandboxResourcesRequest) (*runtime.UpdatePodSandboxResourcesResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "pod sandbox ID is required")
	}
	if err := s.opts.Sandboxes.UpdateResources(ctx, req.GetPodSandboxId(), req.GetOverhead(), req.GetResources()); err != nil {
		return nil, sandboxError(err)
	}
	return &runtime.UpdatePodSandboxResourcesResponse{}, nil
}

package cri

import (
	"context"
	"errors"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/sandbox"
)

// RunPodSandbox implements runtime.RuntimeServiceServer.
func (s *Service) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	if sandbox.WantsUserNamespace(req.GetConfig()) && s.opts.Runtime != nil &&
		!s.opts.Runtime.Features(ctx, req.GetRuntimeHandler()).UserNamespaces {
		return nil, fmt.Errorf("%w: runtime handler %q does not support user namespaces on this host (see Status runtime_handlers)", errInvalidArgument, req.GetRuntimeHandler())
	}
	// The NRI RunPodSandbox hook runs inside Run, before the pod is listed.
	unblockNRI := s.opts.NRI.BlockSync()
	sb, err := s.opts.Sandboxes.Run(ctx, req.GetConfig(), req.GetRuntimeHandler())
	unblockNRI()
	if err != nil {
		return nil, err
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: sb.ID}, nil
}

// StopPodSandbox implements runtime.RuntimeServiceServer. The pod's
// containers are stopped first; an unknown pod is already stopped.
func (s *Service) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, fmt.Errorf("%w: pod sandbox ID is required", errInvalidArgument)
	}
	sb, err := s.opts.Sandboxes.Get(id)
	if errors.Is(err, sandbox.ErrNotFound) {
		return &runtime.StopPodSandboxResponse{}, nil
	}
	if err := s.stopPodContainers(ctx, id); err != nil {
		return nil, fmt.Errorf("stop containers of pod %s: %w", id, err)
	}
	s.nriStopPod(ctx, sb)
	if err := s.opts.Sandboxes.Stop(ctx, id); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox implements runtime.RuntimeServiceServer. The pod's
// containers are removed first; an unknown pod is already removed.
func (s *Service) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, fmt.Errorf("%w: pod sandbox ID is required", errInvalidArgument)
	}
	sb, err := s.opts.Sandboxes.Get(id)
	if errors.Is(err, sandbox.ErrNotFound) {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	if err := s.removePodContainers(ctx, id); err != nil {
		return nil, fmt.Errorf("remove containers of pod %s: %w", id, err)
	}
	s.nriStopPod(ctx, sb)
	if err := s.opts.Sandboxes.Remove(ctx, id); err != nil {
		return nil, fmt.Errorf("remove pod %s: %w", id, err)
	}
	s.opts.NRI.RemovePodSandbox(ctx, sb)
	return &runtime.RemovePodSandboxResponse{}, nil
}

// UpdatePodSandboxResources implements runtime.RuntimeServiceServer: an
// in-place pod resize sets the pod cgroup's limits.
func (s *Service) UpdatePodSandboxResources(ctx context.Context, req *runtime.UpdatePodSandboxResourcesRequest) (*runtime.UpdatePodSandboxResourcesResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, fmt.Errorf("%w: pod sandbox ID is required", errInvalidArgument)
	}
	if err := s.opts.Sandboxes.UpdateResources(ctx, req.GetPodSandboxId(), req.GetOverhead(), req.GetResources()); err != nil {
		return nil, err
	}
	return &runtime.UpdatePodSandboxResourcesResponse{}, nil
}

package cri

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/fault"
)

// StartContainer implements runtime.RuntimeServiceServer.
func (s *Service) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if st := c.State(); st != runtime.ContainerState_CONTAINER_CREATED {
		return nil, fmt.Errorf("%w: container %s is %s, not created", errFailedPrecondition, c.ID, st)
	}
	pod := s.nriPod(c.PodID)
	if err := s.opts.NRI.StartContainer(ctx, pod, c.nriView()); err != nil {
		s.failStart(c, err)
		return nil, err
	}
	started := time.Now()
	clock := newStepClock("StartContainer", c.ID)
	if err := s.opts.Runtime.Start(ctx, c.Handler, c.ID); err != nil {
		s.failStart(c, err)
		return nil, fmt.Errorf("start container %s: %w", c.ID, err)
	}
	clock.done("runtime start")
	fault.Crash("container.start.after-runtime")
	err = s.containers.update(c, func(st *containerStatus) error {
		st.StartedAt = started
		if st.State == runtime.ContainerState_CONTAINER_CREATED {
			st.State = runtime.ContainerState_CONTAINER_RUNNING
		}
		return nil
	})
	if err != nil {
		klog.ErrorS(err, "Save started container", "containerID", c.ID)
	}
	s.opts.NRI.PostStartContainer(ctx, pod, c.nriView())
	// A process that exits at once may have done so before the state
	// above was set; the exit watcher found it still "created".
	s.refreshContainer(c)
	return &runtime.StartContainerResponse{}, nil
}

// failStart marks a container whose start failed as exited with the error,
// as the kubelet expects, and makes sure no process of it is left.
func (s *Service) failStart(c *containerRecord, startErr error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.opts.Runtime.Stop(ctx, c.Handler, c.ID, syscall.SIGKILL, 0); err != nil {
		klog.ErrorS(err, "Kill container after failed start", "containerID", c.ID)
	}
	err := s.containers.update(c, func(st *containerStatus) error {
		if st.State != runtime.ContainerState_CONTAINER_EXITED {
			st.State = runtime.ContainerState_CONTAINER_EXITED
			st.FinishedAt = time.Now()
			st.ExitCode = 128
		}
		st.Reason = reasonStartError
		st.Message = startErr.Error()
		return nil
	})
	if err != nil {
		klog.ErrorS(err, "Save failed container", "containerID", c.ID)
	}
	s.nriStopped(c)
}

// StopContainer implements runtime.RuntimeServiceServer. Stopping an
// unknown or exited container succeeds.
func (s *Service) StopContainer(ctx context.Context, req *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	c, err := s.containers.get(req.GetContainerId())
	if errors.Is(err, errNotFound) {
		return &runtime.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(req.GetTimeout()) * time.Second
	if err := s.stopContainer(ctx, c, timeout); err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

// stopContainer sends the stop signal, then SIGKILL after timeout, and
// returns once the exit is recorded.
func (s *Service) stopContainer(ctx context.Context, c *containerRecord, timeout time.Duration) error {
	c.op.Lock()
	defer c.op.Unlock()
	s.refreshContainer(c)
	if c.State() == runtime.ContainerState_CONTAINER_EXITED {
		return nil
	}
	if c.State() == runtime.ContainerState_CONTAINER_CREATED {
		// Its process never ran the container's program: nothing to shut
		// down gracefully.
		timeout = 0
	}
	clock := newStepClock("StopContainer", c.ID)
	if err := s.opts.Runtime.Stop(ctx, c.Handler, c.ID, c.StopSignal, timeout); err != nil {
		return fmt.Errorf("stop container %s: %w", c.ID, err)
	}
	clock.done("signal and exit")
	fault.Crash("container.stop.after-runtime")
	s.refreshContainer(c)
	clock.done("record")
	// As containerd's StopContainer, which deletes the task: the stop
	// returns with the runtime done with the container.
	s.releaseRuntimeLocked(ctx, c)
	clock.done("runtime delete")
	return nil
}

// RemoveContainer implements runtime.RuntimeServiceServer. A running
// container is killed first; removing an unknown container succeeds.
func (s *Service) RemoveContainer(ctx context.Context, req *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	c, err := s.containers.get(req.GetContainerId())
	if errors.Is(err, errNotFound) {
		return &runtime.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.removeContainer(ctx, c); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

func (s *Service) removeContainer(ctx context.Context, c *containerRecord) error {
	if err := s.stopContainer(ctx, c, 0); err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	clock := newStepClock("RemoveContainer", c.ID)
	if err := s.deleteFromRuntime(ctx, c); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	clock.done("runtime")
	fault.Crash("container.remove.after-runtime-delete")
	if err := s.opts.Images.RemoveRootfs(ctx, c.ID); err != nil {
		return fmt.Errorf("remove rootfs of container %s: %w", c.ID, err)
	}
	clock.done("rootfs")
	fault.Crash("container.remove.before-record")
	if err := s.containers.delete(c); err != nil {
		return err
	}
	clock.done("record")
	s.stats.forget(c.ID)
	s.opts.NRI.RemoveContainer(ctx, s.nriPod(c.PodID), c.nriView())
	klog.V(2).InfoS("Removed container", "containerID", c.ID)
	return nil
}

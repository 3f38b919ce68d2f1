package cri

import (
	"context"
	"errors"
	"time"
)

// podStopTimeout is how long the pod's containers get to exit on their
// stop signal when the pod is stopped: the kubelet stops containers
// itself with their grace period first, so what is left is killed soon.
const podStopTimeout = 2 * time.Second

// stopPodContainers stops every container of the pod before its sandbox is
// torn down.
func (s *Service) stopPodContainers(ctx context.Context, podID string) error {
	var errs []error
	for _, c := range s.containers.byPod(podID) {
		if err := s.stopContainer(ctx, c, podStopTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removePodContainers removes every container of the pod before its sandbox
// is removed.
func (s *Service) removePodContainers(ctx context.Context, podID string) error {
	var errs []error
	for _, c := range s.containers.byPod(podID) {
		if err := s.removeContainer(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package cri

import "context"

// stopPodContainers stops every container of the pod before its sandbox is
// torn down. Containers are not implemented yet (issue 8), so a pod has none.
func (s *Service) stopPodContainers(ctx context.Context, podID string) error { return nil }

// removePodContainers removes every container of the pod before its sandbox
// is removed. Containers are not implemented yet (issue 8), so a pod has none.
func (s *Service) removePodContainers(ctx context.Context, podID string) error { return nil }

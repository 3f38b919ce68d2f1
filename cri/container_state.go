package cri

import (
	"context"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/fault"
	"github.com/criserver/criserver/oci"
)

// Exit reasons reported in ContainerStatus.reason.
const (
	reasonCompleted  = "Completed"
	reasonError      = "Error"
	reasonOOMKilled  = "OOMKilled"
	reasonStartError = "StartError"
	reasonUnknown    = "Unknown"
)

// refreshContainer picks up an exit conmon recorded and returns whether
// the container changed to exited. It is called by the exit watcher, after
// Start and Stop, and by Status so a missed event cannot leave a stale state.
func (s *Service) refreshContainer(c *containerRecord) bool {
	if c.State() == runtime.ContainerState_CONTAINER_EXITED {
		return false
	}
	ex, ok, err := s.opts.Runtime.Exited(c.ID, c.CgroupsPath)
	if err != nil {
		klog.ErrorS(err, "Read container exit status", "containerID", c.ID)
		return false
	}
	if !ok {
		return false
	}
	exited := false
	err = s.containers.update(c, func(st *containerStatus) error {
		if st.State == runtime.ContainerState_CONTAINER_EXITED {
			return errUnchanged
		}
		st.exited(ex)
		exited = true
		return nil
	})
	if err != nil {
		klog.ErrorS(err, "Save exited container", "containerID", c.ID)
	}
	if exited {
		s.nriStopped(c)
		go s.releaseRuntime(c)
	}
	return exited
}

// releaseRuntime deletes an exited container from its OCI runtime (the
// runtime's state and cgroup, conmon's leftovers, the bundle) once the exit
// is recorded, as containerd deletes a task when it exits: RemoveContainer
// then finds nothing slow left to do. conmon writes the exit file after it
// has drained and synced the logs, so nothing of the output is lost. It runs
// in its own goroutine and takes the op lock, so it waits for a Stop or
// Start in flight and leaves a removed container alone. A failure, or a
// crash half way, leaves the rest to RemoveContainer: Runtime.Delete does
// what is missing.
func (s *Service) releaseRuntime(c *containerRecord) {
	if c.released.Load() {
		return
	}
	c.op.Lock()
	defer c.op.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.releaseRuntimeLocked(ctx, c)
}

// releaseRuntimeLocked is releaseRuntime for a caller holding c.op.
func (s *Service) releaseRuntimeLocked(ctx context.Context, c *containerRecord) {
	if c.released.Load() || c.isRemoved() || c.State() != runtime.ContainerState_CONTAINER_EXITED {
		return
	}
	if err := s.deleteFromRuntime(ctx, c); err != nil {
		klog.ErrorS(err, "Delete exited container from its runtime; RemoveContainer will retry", "containerID", c.ID)
		return
	}
	fault.Crash("container.exit.after-runtime-delete")
}

// deleteFromRuntime deletes c from its OCI runtime unless that is done
// already, and marks it released. The caller holds c.op.
func (s *Service) deleteFromRuntime(ctx context.Context, c *containerRecord) error {
	if c.released.Load() {
		return nil
	}
	if err := s.opts.Runtime.Delete(ctx, c.Handler, c.ID); err != nil {
		return err
	}
	c.released.Store(true)
	return nil
}

// exited records the exit conmon reported.
func (st *containerStatus) exited(ex oci.ExitStatus) {
	st.State = runtime.ContainerState_CONTAINER_EXITED
	st.FinishedAt = ex.FinishedAt
	if !st.StartedAt.IsZero() && st.FinishedAt.Before(st.StartedAt) {
		st.FinishedAt = st.StartedAt
	}
	st.ExitCode = ex.Code
	switch {
	case ex.OOMKilled:
		st.Reason = reasonOOMKilled
	case ex.Code == 0:
		st.Reason = reasonCompleted
	default:
		st.Reason = reasonError
	}
}

// onExit is the exit watcher's callback.
func (s *Service) onExit(id string) {
	if c, ok := s.containers.lookup(id); ok {
		s.refreshContainer(c)
	}
}

// toContainer is the ListContainers form.
func (c *containerRecord) toContainer() *runtime.Container {
	return &runtime.Container{
		Id:           c.ID,
		PodSandboxId: c.PodID,
		Metadata:     c.Config.GetMetadata(),
		Image:        c.imageSpec(),
		ImageRef:     c.imageRef(),
		ImageId:      c.Image.ID,
		State:        c.State(),
		CreatedAt:    c.CreatedAt.UnixNano(),
		Labels:       c.Config.GetLabels(),
		Annotations:  c.Config.GetAnnotations(),
	}
}

// imageSpec names the image the way the CRI config did when that was a
// name of it, else by its first tag, else by ID.
func (c *containerRecord) imageSpec() *runtime.ImageSpec {
	name := c.Image.ID
	if len(c.Image.RepoTags) > 0 {
		name = c.Image.RepoTags[0]
	}
	for _, n := range append(append([]string{}, c.Image.RepoTags...), c.Image.RepoDigests...) {
		if n == c.Image.Ref {
			name = n
		}
	}
	spec := c.Config.GetImage()
	return &runtime.ImageSpec{
		Image:              name,
		Annotations:        spec.GetAnnotations(),
		UserSpecifiedImage: spec.GetUserSpecifiedImage(),
		RuntimeHandler:     spec.GetRuntimeHandler(),
	}
}

// imageRef is the image's first repo digest, else its ID: what ImageStatus
// reports for the same image.
func (c *containerRecord) imageRef() string {
	if len(c.Image.RepoDigests) > 0 {
		return c.Image.RepoDigests[0]
	}
	return c.Image.ID
}

// signalEnum maps a signal number to its CRI enum by name.
func signalEnum(sig syscall.Signal) runtime.Signal {
	if name := unix.SignalName(sig); name != "" {
		if v, ok := runtime.Signal_value["SIGNAL_"+name]; ok {
			return runtime.Signal(v)
		}
	}
	return runtime.Signal_SIGNAL_RUNTIME_DEFAULT
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// toStatus is the ContainerStatus form.
func (c *containerRecord) toStatus() *runtime.ContainerStatus {
	cs := c.Status()
	gids := make([]int64, 0, len(c.User.AdditionalGids))
	for _, g := range c.User.AdditionalGids {
		gids = append(gids, int64(g))
	}
	st := &runtime.ContainerStatus{
		Id:          c.ID,
		Metadata:    c.Config.GetMetadata(),
		State:       cs.State,
		CreatedAt:   c.CreatedAt.UnixNano(),
		StartedAt:   unixNano(cs.StartedAt),
		FinishedAt:  unixNano(cs.FinishedAt),
		ExitCode:    cs.ExitCode,
		Image:       c.imageSpec(),
		ImageRef:    c.imageRef(),
		ImageId:     c.Image.ID,
		Reason:      cs.Reason,
		Message:     cs.Message,
		Labels:      c.Config.GetLabels(),
		Annotations: c.Config.GetAnnotations(),
		Mounts:      c.Config.GetMounts(),
		LogPath:     c.LogPath,
		User: &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{
			Uid: int64(c.User.UID), Gid: int64(c.User.GID), SupplementalGroups: gids,
		}},
		StopSignal: signalEnum(c.StopSignal),
	}
	if cs.Resources != nil {
		st.Resources = &runtime.ContainerResources{Linux: cs.Resources}
	}
	return st
}

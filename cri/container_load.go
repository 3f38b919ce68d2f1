package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/atomicfile"
	"github.com/criserver/criserver/oci"
)

// host returns the host facts spec generation needs, detected once.
func (s *Service) host() *oci.HostInfo {
	s.hostOnce.Do(func() {
		h := oci.DetectHost()
		s.hostInfo = &h
	})
	return s.hostInfo
}

// LoadContainers reads the container records left by an earlier run,
// reconciles them with what conmon recorded meanwhile, and starts the exit
// watcher and the stats refresher, which run until ctx ends. The daemon calls it before serving.
func (s *Service) LoadContainers(ctx context.Context) error {
	if s.opts.Runtime == nil {
		return errors.New("no container runtime configured")
	}
	if err := s.opts.Runtime.WatchExits(ctx, s.onExit); err != nil {
		return err
	}
	dir := s.containers.dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	ids, err := s.containers.recordIDs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.loadContainer(ctx, id); err != nil {
			klog.ErrorS(err, "Skipping container record", "containerID", id)
		}
	}
	s.removeOrphanBundles(ctx)
	s.removeOrphanRootfs(ctx)
	klog.InfoS("Containers loaded", "count", len(s.containers.list()))
	go s.releaseExited()
	go s.refreshStats(ctx)
	return nil
}

// releaseExited releases from the runtime, one at a time, the containers
// that had exited when the daemon stopped (or crashed before releasing
// them); see releaseRuntime.
func (s *Service) releaseExited() {
	for _, c := range s.containers.list() {
		if c.State() == runtime.ContainerState_CONTAINER_EXITED {
			s.releaseRuntime(c)
		}
	}
}

// removeOrphanBundles deletes containers the runtime has but no record
// names (a crash during a remove): their runtime state, conmon, bundle
// and writable layer.
func (s *Service) removeOrphanBundles(ctx context.Context) {
	ids, err := s.opts.Runtime.BundleIDs()
	if err != nil {
		klog.ErrorS(err, "Look for orphan containers")
		return
	}
	for _, id := range ids {
		if _, err := s.containers.get(id); err == nil {
			continue
		}
		klog.InfoS("Removing a container without a record", "containerID", id)
		if err := s.opts.Runtime.DeleteUnknown(ctx, id); err != nil {
			klog.ErrorS(err, "Remove orphan container", "containerID", id)
		}
		if err := s.opts.Images.RemoveRootfs(ctx, id); err != nil {
			klog.ErrorS(err, "Remove orphan container rootfs", "containerID", id)
		}
	}
}

// removeOrphanRootfs deletes writable layers (and their image volume
// mounts) that no record names: a crash in CreateContainer between the
// rootfs and the record.
func (s *Service) removeOrphanRootfs(ctx context.Context) {
	for _, id := range s.opts.Images.RootfsIDs() {
		if _, err := s.containers.get(id); err == nil {
			continue
		}
		klog.InfoS("Removing a container rootfs without a record", "containerID", id)
		if err := s.opts.Images.RemoveRootfs(ctx, id); err != nil {
			klog.ErrorS(err, "Remove orphan container rootfs", "containerID", id)
		}
	}
}

func (s *Service) loadContainer(ctx context.Context, id string) error {
	var f recordFile
	if err := atomicfile.ReadJSON(s.containers.recordPath(id), &f); err != nil {
		return err
	}
	c, err := recordFromFile(&f)
	if err != nil {
		return err
	}
	if f.Incomplete {
		// An earlier version's record of a container whose creation a
		// crash interrupted: it never came to be.
		klog.InfoS("Removing a container whose creation was interrupted", "containerID", id)
		s.rollbackCreate(c)
		return nil
	}
	if _, err := s.opts.Images.MountRootfs(ctx, id); err != nil {
		klog.ErrorS(err, "Remount container rootfs", "containerID", id)
	}
	s.containers.index(c)
	exited := s.refreshContainer(c)
	if exited {
		st := c.Status()
		code, at := st.ExitCode, st.FinishedAt
		klog.InfoS("Container exited while the daemon was down; recorded its exit from the monitor's exit file", "containerID", id, "exitCode", code, "finishedAt", at)
	}
	if !exited && c.State() == runtime.ContainerState_CONTAINER_CREATED {
		if err := s.reconcileStarted(ctx, c); err != nil {
			return err
		}
	}
	if !exited && c.State() != runtime.ContainerState_CONTAINER_EXITED && s.opts.Runtime.ConmonPid(id) == 0 {
		// Neither an exit file nor a monitor: the state dir was wiped (a
		// reboot). The container is gone; its exit code is unknown.
		return s.containers.update(c, func(st *containerStatus) error {
			st.State = runtime.ContainerState_CONTAINER_EXITED
			st.ExitCode = 255
			st.Reason = reasonUnknown
			st.Message = "container monitor is gone (host rebooted?)"
			if st.FinishedAt.IsZero() {
				st.FinishedAt = st.StartedAt
			}
			return nil
		})
	}
	return nil
}

// reconcileStarted marks running a container whose record says created
// but which the runtime runs: the daemon died in StartContainer after the
// runtime started it and before the record was saved. The start time is
// unknown; the time it is found running stands in for it.
func (s *Service) reconcileStarted(ctx context.Context, c *containerRecord) error {
	st, err := s.opts.Runtime.Status(ctx, c.Handler, c.ID)
	if err != nil || st != "running" {
		return nil // not found or not started: the record is right
	}
	klog.InfoS("Marking running a container the runtime started after its record was last saved (daemon died during StartContainer)", "containerID", c.ID)
	return s.containers.update(c, func(st *containerStatus) error {
		if st.State != runtime.ContainerState_CONTAINER_CREATED {
			return errUnchanged
		}
		st.State = runtime.ContainerState_CONTAINER_RUNNING
		st.StartedAt = time.Now()
		return nil
	})
}

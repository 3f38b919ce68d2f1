package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/fault"
	"github.com/criserver/criserver/imagestore"
	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/sandbox"
)

// createTimeout bounds one CreateContainer, whatever the caller's deadline.
const createTimeout = 4 * time.Minute

// containerError maps an error of the packages below onto its gRPC code;
// errors that already carry a code keep it.
func containerError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, oci.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, imagestore.ErrNotFound), errors.Is(err, sandbox.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, oci.ErrNotRunning):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return status.Error(codes.ResourceExhausted, "no space left for the container: "+err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// CreateContainer implements runtime.RuntimeServiceServer.
func (s *Service) CreateContainer(ctx context.Context, req *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	if err := validateContainerConfig(req.GetPodSandboxId(), cfg); err != nil {
		return nil, err
	}
	sb, err := s.opts.Sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, containerError(err)
	}
	if sb.State != sandbox.StateReady {
		return nil, status.Errorf(codes.FailedPrecondition, "pod sandbox %s is not ready", sb.ID)
	}
	key := nameKey(sb.ID, cfg.GetMetadata())
	res, first := s.reserveName(key)
	if !first {
		// A retry of a call still running or already done: its result.
		select {
		case <-res.done:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		if res.err != nil {
			return nil, res.err
		}
		return &runtime.CreateContainerResponse{ContainerId: res.id}, nil
	}
	// The create runs to completion even when the caller gives up, so that
	// the kubelet's retry gets this container instead of a half-made one.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	unblockNRI := s.opts.NRI.BlockSync()
	c, err := s.createContainer(cctx, sb, cfg)
	s.finishReservation(key, res, c, err)
	unblockNRI()
	if err != nil {
		return nil, containerError(err)
	}
	s.opts.NRI.PostCreateContainer(cctx, sb, c.nriView())
	s.events.publish(s, c, runtime.ContainerEventType_CONTAINER_CREATED_EVENT)
	return &runtime.CreateContainerResponse{ContainerId: c.ID}, nil
}

func validateContainerConfig(podID string, cfg *runtime.ContainerConfig) error {
	switch {
	case podID == "":
		return status.Error(codes.InvalidArgument, "pod sandbox ID is empty")
	case cfg == nil:
		return status.Error(codes.InvalidArgument, "container config is nil")
	case cfg.GetMetadata() == nil || cfg.GetMetadata().GetName() == "":
		return status.Error(codes.InvalidArgument, "container metadata name is empty")
	case cfg.GetImage().GetImage() == "":
		return status.Error(codes.InvalidArgument, "container image is empty")
	}
	return nil
}

// reserveName returns the reservation of key and whether this call made it.
func (s *Service) reserveName(key string) (*nameReservation, bool) {
	st := s.containers
	st.mu.Lock()
	defer st.mu.Unlock()
	if r, ok := st.byName[key]; ok {
		return r, false
	}
	r := &nameReservation{done: make(chan struct{})}
	st.byName[key] = r
	return r, true
}

// finishReservation publishes the outcome; a failed create frees the name.
func (s *Service) finishReservation(key string, r *nameReservation, c *containerRecord, err error) {
	st := s.containers
	st.mu.Lock()
	if err != nil {
		r.err = containerError(err)
		delete(st.byName, key)
	} else {
		r.id = c.ID
		st.byID[c.ID] = c
	}
	st.mu.Unlock()
	close(r.done)
}

func newContainerID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// createContainer does the work of CreateContainer; on failure it leaves
// nothing behind: no rootfs mount, bundle, conmon, cgroup or record.
func (s *Service) createContainer(ctx context.Context, sb *sandbox.Sandbox, cfg *runtime.ContainerConfig) (_ *containerRecord, err error) {
	img, err := s.opts.Images.Resolve(cfg.GetImage().GetImage())
	if err != nil {
		if errors.Is(err, imagestore.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "image %q not found", cfg.GetImage().GetImage())
		}
		return nil, err
	}
	logPath, err := containerLogPath(sb.Config.GetLogDirectory(), cfg.GetLogPath())
	if err != nil {
		return nil, err
	}
	id := newContainerID()
	c := &containerRecord{
		ID: id, PodID: sb.ID, Handler: sb.RuntimeHandler, Config: cfg, CreatedAt: time.Now(),
		Image:   containerImage{Ref: cfg.GetImage().GetImage(), ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests},
		LogPath: logPath, nameKey: nameKey(sb.ID, cfg.GetMetadata()),
		state:     runtime.ContainerState_CONTAINER_CREATED,
		resources: cfg.GetLinux().GetResources(),
	}
	defer func() {
		if err != nil {
			s.rollbackCreate(c)
		}
	}()
	rootfs, err := s.opts.Images.CreateRootfs(ctx, id, img.ID)
	if err != nil {
		return nil, fmt.Errorf("create rootfs of container %s: %w", id, err)
	}
	fault.Crash("container.create.after-rootfs")
	in := oci.SpecInput{
		ContainerID:       id,
		Config:            cfg,
		Sandbox:           sb.SpecInfo(),
		Image:             img.Config,
		ImageRootfs:       rootfs,
		CgroupDriver:      s.opts.CgroupDriver,
		ImageVolumes:      s.opts.Runtime.Config().ImageVolumes,
		VolumeDir:         filepath.Join(s.containerDir(id), "volumes"),
		RecursiveReadOnly: s.opts.Runtime.RecursiveReadOnly(ctx, sb.RuntimeHandler),
		Host:              s.host(),
	}
	if in.TargetPIDNSPath, err = s.targetPIDNS(cfg); err != nil {
		return nil, err
	}
	spec, err := oci.GenerateSpec(in)
	if err != nil {
		return nil, err
	}
	// Plugins adjust the spec before anything is made from it; the
	// container is listed only once they have answered.
	if err := s.opts.NRI.CreateContainer(ctx, sb, c.nriView(), spec.Spec, in.Host); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.opts.NRI.RemoveContainer(context.WithoutCancel(ctx), sb, c.nriView())
		}
	}()
	c.CgroupsPath, c.User, c.StopSignal = spec.Spec.Linux.CgroupsPath, spec.User, spec.StopSignal
	if err := spec.MakeDirs(); err != nil {
		return nil, fmt.Errorf("create volume dirs of container %s: %w", id, err)
	}
	// The record exists before conmon does, so that a crash in between
	// leaves something for start-up to clean up.
	fault.Crash("container.create.before-record")
	if err := s.saveContainer(c); err != nil {
		return nil, err
	}
	pid, err := s.opts.Runtime.Create(ctx, oci.CreateOptions{
		ID: id, Name: cfg.GetMetadata().GetName(), Handler: sb.RuntimeHandler, Spec: spec.Spec, LogPath: logPath,
		Terminal: cfg.GetTty(), Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(),
	})
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	fault.Crash("container.create.after-conmon")
	c.pid = pid
	if err := s.saveContainer(c); err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Created container", "containerID", id, "pod", sb.ID, "name", cfg.GetMetadata().GetName())
	return c, nil
}

// rollbackCreate undoes a failed create.
func (s *Service) rollbackCreate(c *containerRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.opts.Runtime.Delete(ctx, c.Handler, c.ID); err != nil {
		klog.ErrorS(err, "Roll back container create: runtime", "containerID", c.ID)
	}
	if err := s.opts.Images.RemoveRootfs(ctx, c.ID); err != nil {
		klog.ErrorS(err, "Roll back container create: rootfs", "containerID", c.ID)
	}
	if err := os.RemoveAll(s.containerDir(c.ID)); err != nil {
		klog.ErrorS(err, "Roll back container create: record", "containerID", c.ID)
	}
}

// containerLogPath joins the pod's log directory and the container's log
// path, refusing a path that would leave the directory. Without either
// there is no CRI log file.
func containerLogPath(dir, rel string) (string, error) {
	if dir == "" || rel == "" {
		return "", nil
	}
	if !filepath.IsAbs(dir) {
		return "", status.Errorf(codes.InvalidArgument, "pod log directory %q is not absolute", dir)
	}
	if filepath.IsAbs(rel) || strings.ContainsRune(rel, 0) {
		return "", status.Errorf(codes.InvalidArgument, "container log path %q must be relative to the pod log directory", rel)
	}
	clean := filepath.Clean(rel)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", status.Errorf(codes.InvalidArgument, "container log path %q leaves the pod log directory", rel)
	}
	return filepath.Join(dir, clean), nil
}

// targetPIDNS is the PID namespace of the target container for
// NamespaceMode TARGET; it must be running.
func (s *Service) targetPIDNS(cfg *runtime.ContainerConfig) (string, error) {
	opts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if opts.GetPid() != runtime.NamespaceMode_TARGET {
		return "", nil
	}
	t, err := s.getContainer(opts.GetTargetId())
	if err != nil {
		return "", status.Errorf(codes.NotFound, "PID namespace target %q: %v", opts.GetTargetId(), err)
	}
	pid := t.Pid()
	if pid == 0 || t.State() != runtime.ContainerState_CONTAINER_RUNNING {
		return "", status.Errorf(codes.FailedPrecondition, "PID namespace target %s is not running", t.ID)
	}
	return fmt.Sprintf("/proc/%d/ns/pid", pid), nil
}

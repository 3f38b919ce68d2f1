package cri

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/fault"
	"github.com/criserver/criserver/imagestore"
	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/sandbox"
)

// createTimeout bounds one CreateContainer, whatever the caller's deadline.
const createTimeout = 4 * time.Minute

// CreateContainer implements runtime.RuntimeServiceServer.
func (s *Service) CreateContainer(ctx context.Context, req *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	if err := validateContainerConfig(req.GetPodSandboxId(), cfg); err != nil {
		return nil, err
	}
	sb, err := s.opts.Sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if sb.State != sandbox.StateReady {
		return nil, fmt.Errorf("%w: pod sandbox %s is not ready", errFailedPrecondition, sb.ID)
	}
	// A retry of a call that made the container gets it (package
	// reservation says why).
	res, err := s.containers.names.Reserve(ctx, nameKey(sb.ID, cfg.GetMetadata()))
	if err != nil {
		return nil, err
	}
	if !res.Held {
		return &runtime.CreateContainerResponse{ContainerId: res.ID}, nil
	}
	// The create runs to completion even when the caller gives up, so that
	// the kubelet's retry gets this container instead of a half-made one.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	unblockNRI := s.opts.NRI.BlockSync()
	c, err := s.createContainer(cctx, res.ID, sb, cfg)
	if err == nil {
		s.containers.add(c)
	}
	res.Done(err)
	unblockNRI()
	if err != nil {
		return nil, err
	}
	s.opts.NRI.PostCreateContainer(cctx, sb, c.nriView())
	s.containers.publish(c, runtime.ContainerEventType_CONTAINER_CREATED_EVENT)
	return &runtime.CreateContainerResponse{ContainerId: c.ID}, nil
}

func validateContainerConfig(podID string, cfg *runtime.ContainerConfig) error {
	switch {
	case podID == "":
		return fmt.Errorf("%w: pod sandbox ID is empty", errInvalidArgument)
	case cfg == nil:
		return fmt.Errorf("%w: container config is nil", errInvalidArgument)
	case cfg.GetMetadata() == nil || cfg.GetMetadata().GetName() == "":
		return fmt.Errorf("%w: container metadata name is empty", errInvalidArgument)
	case cfg.GetImage().GetImage() == "":
		return fmt.Errorf("%w: container image is empty", errInvalidArgument)
	}
	return nil
}

// createContainer does the work of CreateContainer; on failure it leaves
// nothing behind: no rootfs mount, bundle, conmon, cgroup or record.
func (s *Service) createContainer(ctx context.Context, id string, sb *sandbox.Sandbox, cfg *runtime.ContainerConfig) (_ *containerRecord, err error) {
	img, err := s.opts.Images.Resolve(cfg.GetImage().GetImage())
	if err != nil {
		if errors.Is(err, imagestore.ErrNotFound) {
			return nil, fmt.Errorf("image %q: %w", cfg.GetImage().GetImage(), errNotFound)
		}
		return nil, err
	}
	logPath, err := containerLogPath(sb.Config.GetLogDirectory(), cfg.GetLogPath())
	if err != nil {
		return nil, err
	}
	// The record names the handler itself, not "": the default may differ
	// after a restart, and the container must stay with its runtime.
	c := &containerRecord{
		ID: id, PodID: sb.ID, Handler: s.opts.Runtime.ResolveHandler(sb.RuntimeHandler), Config: cfg, CreatedAt: time.Now(),
		Image:   containerImage{Ref: cfg.GetImage().GetImage(), ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests},
		LogPath: logPath, nameKey: nameKey(sb.ID, cfg.GetMetadata()),
	}
	c.setStatus(containerStatus{State: runtime.ContainerState_CONTAINER_CREATED, Resources: cfg.GetLinux().GetResources()})
	defer func() {
		if err != nil {
			s.rollbackCreate(c)
		}
	}()
	clock := newStepClock("CreateContainer", id)
	// The record is written once, last: what a crash leaves before it (the
	// writable layer, the bundle with conmon and the runtime's container,
	// a files directory with image volumes) is named by the ID and no
	// record names it, so start-up removes it (LoadContainers). A record
	// marked incomplete first would cost a second write of every container.
	vols := imageVolumeMounts(cfg)
	rootfs, err := s.opts.Images.CreateRootfs(ctx, id, img.ID, imagestore.RootfsOptions{VolumeImages: vols.images, UserNS: rootfsUserNS(sb)})
	if err != nil {
		return nil, fmt.Errorf("create rootfs of container %s: %w", id, err)
	}
	clock.done("rootfs")
	fault.Crash("container.create.after-rootfs")
	feats := s.opts.Runtime.Features(ctx, sb.RuntimeHandler)
	c.Config = vols.withImageRefs(rootfs.VolumeImageIDs)
	in := oci.SpecInput{
		ContainerID:       id,
		Config:            cfg,
		Sandbox:           sb.SpecInfo(),
		Image:             img.Config,
		ImageRootfs:       rootfs.Path,
		ImageMountRoots:   vols.roots(rootfs.Volumes),
		CgroupDriver:      s.opts.CgroupDriver,
		ImageVolumes:      s.opts.Runtime.Config().ImageVolumes,
		VolumeDir:         filepath.Join(s.containers.filesDir(id), "volumes"),
		RecursiveReadOnly: feats.RecursiveReadOnly,
		IDMappedMounts:    feats.IDMappedMounts,
		Host:              s.host(),
	}
	if in.TargetPIDNSPath, err = s.targetPIDNS(cfg); err != nil {
		return nil, err
	}
	spec, err := oci.GenerateSpec(in)
	if err != nil {
		return nil, err
	}
	clock.done("spec")
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
	fault.Crash("container.create.before-conmon")
	pid, err := s.opts.Runtime.Create(ctx, oci.CreateOptions{
		ID: id, Name: cfg.GetMetadata().GetName(), Handler: c.Handler, Spec: spec.Spec, LogPath: logPath,
		Terminal: cfg.GetTty(), Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(),
	})
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	clock.done("conmon and runtime create")
	fault.Crash("container.create.after-conmon")
	st := c.Status()
	st.Pid = pid
	c.setStatus(st)
	if err := s.containers.save(c); err != nil {
		return nil, err
	}
	clock.done("record")
	klog.V(2).InfoS("Created container", "containerID", id, "pod", sb.ID, "name", cfg.GetMetadata().GetName())
	return c, nil
}

// rootfsUserNS is the user namespace a container of sb runs in, for its
// rootfs to be id-mapped into; nil for the host's.
func rootfsUserNS(sb *sandbox.Sandbox) *imagestore.UserNS {
	uid, gid, ok := sb.UserNamespace()
	if !ok {
		return nil
	}
	return &imagestore.UserNS{Path: sb.UserNSPath, UID: uid.HostID, GID: gid.HostID}
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
	if err := s.containers.delete(c); err != nil {
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
		return "", fmt.Errorf("%w: pod log directory %q is not absolute", errInvalidArgument, dir)
	}
	if filepath.IsAbs(rel) || strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("%w: container log path %q must be relative to the pod log directory", errInvalidArgument, rel)
	}
	clean := filepath.Clean(rel)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w: container log path %q leaves the pod log directory", errInvalidArgument, rel)
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
	t, err := s.containers.get(opts.GetTargetId())
	if err != nil {
		return "", fmt.Errorf("PID namespace target %q: %w", opts.GetTargetId(), errNotFound)
	}
	pid := t.Pid()
	if pid == 0 || t.State() != runtime.ContainerState_CONTAINER_RUNNING {
		return "", fmt.Errorf("%w: PID namespace target %s is not running", errFailedPrecondition, t.ID)
	}
	return fmt.Sprintf("/proc/%d/ns/pid", pid), nil
}

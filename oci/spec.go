package oci

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/criserver/criserver/cgroups"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ErrInvalid marks errors caused by the caller's request (bad CRI config,
// missing mount source, unknown capability, missing seccomp profile...).
// The cri layer maps errors.Is(err, ErrInvalid) to codes.InvalidArgument.
var ErrInvalid = errors.New("invalid container config")

// invalidf returns an error wrapping ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Image volume policies (SpecInput.ImageVolumes).
const (
	ImageVolumesMkdir  = "mkdir"  // create the directory in the container's rootfs
	ImageVolumesBind   = "bind"   // bind a per-container directory under SpecInput.VolumeDir
	ImageVolumesIgnore = "ignore" // do nothing
)

// ociVersion is the runtime-spec version written into specs: the highest
// version runc 1.1.5 advertises, so that every installed runtime accepts it.
const ociVersion = "1.0.2-dev"

// ociVersionIDMap is written into the specs of containers in a user
// namespace instead: mount uidMappings/gidMappings came with 1.1.0, which
// the runtimes that support them accept (crun 1.8 refuses 1.3.0).
const ociVersionIDMap = "1.1.0"

// SandboxInfo is what a container takes from its pod.
type SandboxInfo struct {
	ID       string
	Hostname string
	// Namespace paths to join; "" when the pod uses the host's namespace
	// (Host* set) or, for UTS, when no pinned namespace exists.
	NetNSPath, IPCNSPath, UTSNSPath string
	// PIDNSPath is the pod's shared PID namespace (pid: POD), else "".
	PIDNSPath string
	// UserNSPath is the pod's user namespace, else "" (the host's); its
	// mappings are UIDMapping and GIDMapping.
	UserNSPath                    string
	UIDMapping, GIDMapping        specs.LinuxIDMapping
	HostNetwork, HostIPC, HostPID bool
	// Files bound into every container; "" skips the mount. ShmPath ""
	// with HostIPC binds the host's /dev/shm.
	ResolvConfPath, HostnamePath, HostsPath, ShmPath string
	// CgroupParent is the pod cgroup in the driver's form: an absolute
	// path for cgroupfs, a slice name for systemd. "" uses DefaultCgroupParent.
	CgroupParent string
	// Sysctls from the pod config, applied in each container's namespaces
	// (there is no infra container to hold them).
	Sysctls map[string]string
}

// SpecInput is everything GenerateSpec needs.
type SpecInput struct {
	ContainerID string
	Config      *runtime.ContainerConfig
	Sandbox     SandboxInfo
	// Image is the image config (Entrypoint, Cmd, Env, WorkingDir, User,
	// StopSignal, Volumes).
	Image ocispec.Image
	// ImageRootfs is the container's mounted rootfs; its /etc/passwd and
	// /etc/group resolve users and groups.
	ImageRootfs string
	// CgroupDriver names the container's cgroup; "" is cgroupfs.
	CgroupDriver cgroups.Driver
	// ImageVolumes is one of ImageVolumes* ("" = mkdir); VolumeDir is the
	// per-container host directory used by the bind policy.
	ImageVolumes string
	VolumeDir    string
	// RecursiveReadOnly tells that the runtime handler supports "rro"
	// mounts (Features.RecursiveReadOnly); without it a mount asking
	// for recursive read-only is refused.
	RecursiveReadOnly bool
	// ImageMountRoots maps the container path of each CRI image volume
	// mount (Mount.image) to the mounted root of its image.
	ImageMountRoots map[string]string
	// IDMappedMounts tells that the runtime handler supports mount
	// uidMappings/gidMappings (Features.IDMappedMounts); without it a CRI
	// mount asking for id mappings is refused.
	IDMappedMounts bool
	// TargetPIDNSPath is the PID namespace of the target container for
	// NamespaceMode TARGET.
	TargetPIDNSPath string
	// Host describes the host; nil detects it (DetectHost).
	Host *HostInfo
}

// ResolvedUser is the identity the container process runs as; it fills
// ContainerStatus.user.
type ResolvedUser struct {
	UID, GID       uint32
	AdditionalGids []uint32
	// Home is the user's home directory from /etc/passwd ("/" if unknown).
	Home string
}

// Result is what GenerateSpec produces.
type Result struct {
	Spec *specs.Spec
	User ResolvedUser
	// StopSignal is the signal that stops the container gracefully: the
	// CRI config's, else the image's, else SIGTERM.
	StopSignal syscall.Signal
	// Dirs must exist before the runtime creates the container: image
	// volume directories (in the rootfs for mkdir, on the host for bind).
	// GenerateSpec does not create them; MakeDirs does.
	Dirs []string
}

// GenerateSpec builds the OCI runtime spec of a container. It reads only
// the files it is pointed at and writes nothing. Errors caused by the
// request wrap ErrInvalid.
func GenerateSpec(in SpecInput) (*Result, error) {
	if in.Config == nil {
		return nil, invalidf("container config is nil")
	}
	if in.ContainerID == "" {
		return nil, invalidf("container id is empty")
	}
	if in.ImageRootfs == "" || !filepath.IsAbs(in.ImageRootfs) {
		return nil, fmt.Errorf("container %s: rootfs %q is not an absolute path", in.ContainerID, in.ImageRootfs)
	}
	if len(in.Config.GetCDIDevices()) > 0 {
		return nil, invalidf("CDI devices are not supported")
	}
	host := in.Host
	if host == nil {
		h := DetectHost()
		host = &h
	}
	sc := in.Config.GetLinux().GetSecurityContext()
	privileged := sc.GetPrivileged()

	s := &specs.Spec{
		Version:     ociVersion,
		Root:        &specs.Root{Path: in.ImageRootfs, Readonly: sc.GetReadonlyRootfs()},
		Process:     &specs.Process{},
		Linux:       &specs.Linux{Resources: &specs.LinuxResources{}},
		Annotations: copyMap(in.Config.GetAnnotations()),
	}
	res := &Result{Spec: s}

	user, err := resolveUser(in.ImageRootfs, in.Image.Config.User, sc)
	if err != nil {
		return nil, err
	}
	res.User = user
	s.Process.User = specs.User{UID: user.UID, GID: user.GID, AdditionalGids: user.AdditionalGids}

	if err := setProcess(s, in, user); err != nil {
		return nil, err
	}
	if res.StopSignal, err = stopSignal(in.Config.GetStopSignal(), in.Image.Config.StopSignal); err != nil {
		return nil, err
	}
	if err := setNamespaces(s, in, host); err != nil {
		return nil, err
	}
	if err := setMounts(s, res, in, host); err != nil {
		return nil, err
	}
	if err := setDevices(s, in.Config.GetDevices(), privileged, host); err != nil {
		return nil, err
	}
	if err := setSecurity(s, sc, in.Sandbox.UserNSPath != "", host); err != nil {
		return nil, err
	}
	if err := setResources(s, in.Config.GetLinux().GetResources(), host); err != nil {
		return nil, err
	}
	if s.Linux.CgroupsPath, err = in.CgroupDriver.Path(in.Sandbox.CgroupParent, in.ContainerID); err != nil {
		if errors.Is(err, cgroups.ErrInvalid) {
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return nil, err
	}
	if len(in.Sandbox.Sysctls) > 0 {
		s.Linux.Sysctl = copyMap(in.Sandbox.Sysctls)
	}
	// process.rlimits is never set: runc fails on this host when it is.
	s.Process.Rlimits = nil
	return res, nil
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

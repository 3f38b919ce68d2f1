// Package sandbox runs pod sandboxes without a pause container: it creates
// the pod's network, IPC and UTS namespaces and pins them with bind mounts,
// attaches the network through CNI, writes the pod's hostname, resolv.conf
// and hosts files, mounts its /dev/shm, creates its cgroup, and starts a
// small infra process only when the pod shares one PID namespace.
//
// On disk:
//
//	<root>/pods/<id>.json                  the record (atomic; reloaded at start)
//	<state>/{netns,ipcns,utsns}/<id>       namespace pins (bind mounts of nsfs)
//	<state>/pods/<id>/{hostname,resolv.conf,hosts}
//	<state>/pods/<id>/shm                  the pod's /dev/shm tmpfs
//
// A record is written marked incomplete before anything is made, so that
// a daemon that dies while making a pod removes its remains at restart.
package sandbox

import (
	"errors"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/oci"
)

// ErrNotFound is returned for an unknown pod ID.
var ErrNotFound = errors.New("pod sandbox not found")

// ErrInvalid wraps every refusal of a bad request (InvalidArgument).
var ErrInvalid = errors.New("invalid pod sandbox config")

// State of a pod sandbox.
type State int

// A pod is Ready from a complete RunPodSandbox until StopPodSandbox.
const (
	StateNotReady State = iota
	StateReady
)

func (s State) String() string {
	if s == StateReady {
		return "READY"
	}
	return "NOTREADY"
}

// Sandbox is one pod. The values handed out by Manager are copies: a
// caller may read them freely while the pod changes.
type Sandbox struct {
	ID             string
	Config         *runtime.PodSandboxConfig
	RuntimeHandler string
	CreatedAt      time.Time
	State          State

	// Pinned namespaces; "" when the pod uses the host's.
	NetNSPath, IPCNSPath, UTSNSPath string
	// UserNSPath pins the pod's user namespace (userns_options mode POD),
	// which owns its other namespaces; "" for the host's.
	UserNSPath string
	// PIDNSPath is /proc/<infra pid>/ns/pid when the pod shares one PID
	// namespace (pid: POD), else "".
	PIDNSPath string
	InfraPID  int

	HostNetwork, HostIPC, HostPID bool

	Hostname                                         string
	HostnamePath, ResolvConfPath, HostsPath, ShmPath string

	// CgroupParent is the pod cgroup in the driver's form (a path for
	// cgroupfs, a slice name for systemd); containers go under it.
	CgroupParent string
	// CgroupCreated tells that this daemon created the pod cgroup and so
	// removes it; a cgroup the kubelet made is the kubelet's to remove.
	CgroupCreated bool

	// IPs of the pod, primary first.
	IPs []string

	// networkDetached tells that CNI DEL succeeded, so that a repeated
	// Stop, and the Remove after it, do not run the plugins again.
	networkDetached bool
}

// Metadata is the pod's CRI metadata (never nil for a stored pod).
func (s *Sandbox) Metadata() *runtime.PodSandboxMetadata {
	return s.Config.GetMetadata()
}

// SpecInfo is what a container of this pod takes from it.
func (s *Sandbox) SpecInfo() oci.SandboxInfo {
	uid, gid, _ := s.UserNamespace()
	return oci.SandboxInfo{
		UIDMapping:     uid,
		GIDMapping:     gid,
		ID:             s.ID,
		Hostname:       s.Hostname,
		NetNSPath:      s.NetNSPath,
		IPCNSPath:      s.IPCNSPath,
		UTSNSPath:      s.UTSNSPath,
		PIDNSPath:      s.PIDNSPath,
		UserNSPath:     s.UserNSPath,
		HostNetwork:    s.HostNetwork,
		HostIPC:        s.HostIPC,
		HostPID:        s.HostPID,
		ResolvConfPath: s.ResolvConfPath,
		HostnamePath:   s.HostnamePath,
		HostsPath:      s.HostsPath,
		ShmPath:        s.ShmPath,
		CgroupParent:   s.CgroupParent,
		Sysctls:        s.Config.GetLinux().GetSysctls(),
	}
}

// UserNamespace returns the pod's uid and gid mappings; ok is false when
// the pod uses the host's user namespace.
func (s *Sandbox) UserNamespace() (uid, gid specs.LinuxIDMapping, ok bool) {
	if s.UserNSPath == "" {
		return uid, gid, false
	}
	uid, gid, ok, err := userNamespaceMappings(s.Config)
	return uid, gid, ok && err == nil
}

func (s *Sandbox) clone() *Sandbox {
	c := *s
	c.IPs = append([]string(nil), s.IPs...)
	return &c
}

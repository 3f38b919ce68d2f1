package sandbox

import (
	"errors"
	"fmt"
	"os/exec"
	goruntime "runtime"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var nsUser = nsKind{"user", unix.CLONE_NEWUSER}

// userNamespaceMappings reads the pod's user namespace request: ok is false
// for the host's user namespace (mode NODE or no options). It refuses what
// the CRI says a runtime must refuse: modes CONTAINER and TARGET, more than
// one mapping, and mappings that leave container ID 0 unmapped.
func userNamespaceMappings(cfg *runtime.PodSandboxConfig) (uid, gid specs.LinuxIDMapping, ok bool, err error) {
	u := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if u == nil {
		// Mode POD is the enum's zero value: only a message that is
		// there asks for a user namespace.
		return uid, gid, false, nil
	}
	switch u.GetMode() {
	case runtime.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return uid, gid, false, fmt.Errorf("%w: user namespace mode NODE takes no mappings", ErrInvalid)
		}
		return uid, gid, false, nil
	case runtime.NamespaceMode_POD:
	default:
		return uid, gid, false, fmt.Errorf("%w: user namespace mode %v is not valid for a pod (NODE or POD)", ErrInvalid, u.GetMode())
	}
	if uid, err = oneMapping("uid", u.GetUids()); err != nil {
		return uid, gid, false, err
	}
	if gid, err = oneMapping("gid", u.GetGids()); err != nil {
		return uid, gid, false, err
	}
	return uid, gid, true, nil
}

func oneMapping(kind string, ms []*runtime.IDMapping) (specs.LinuxIDMapping, error) {
	if len(ms) != 1 {
		return specs.LinuxIDMapping{}, fmt.Errorf("%w: user namespace needs exactly one %s mapping, got %d", ErrInvalid, kind, len(ms))
	}
	m := ms[0]
	switch {
	case m.GetContainerId() != 0:
		return specs.LinuxIDMapping{}, fmt.Errorf("%w: user namespace %s mapping must map container ID 0, it starts at %d", ErrInvalid, kind, m.GetContainerId())
	case m.GetLength() == 0:
		return specs.LinuxIDMapping{}, fmt.Errorf("%w: user namespace %s mapping is empty", ErrInvalid, kind)
	case m.GetHostId() == 0:
		return specs.LinuxIDMapping{}, fmt.Errorf("%w: user namespace %s mapping maps container root to host root", ErrInvalid, kind)
	case uint64(m.GetHostId())+uint64(m.GetLength()) > 1<<32-1:
		return specs.LinuxIDMapping{}, fmt.Errorf("%w: user namespace %s mapping %d+%d leaves the ID range", ErrInvalid, kind, m.GetHostId(), m.GetLength())
	}
	return specs.LinuxIDMapping{ContainerID: 0, HostID: m.GetHostId(), Size: m.GetLength()}, nil
}

// WantsUserNamespace tells whether cfg asks for a user namespace of the
// pod's own (mode POD), valid or not.
func WantsUserNamespace(cfg *runtime.PodSandboxConfig) bool {
	u := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	return u != nil && u.GetMode() == runtime.NamespaceMode_POD
}

// usernsClone is a clone into a new user namespace with one mapping for
// uids and one for gids, and into new namespaces of the other kinds in
// flags, which the kernel makes owned by the new user namespace.
type usernsClone struct {
	flags    int
	uid, gid specs.LinuxIDMapping
}

func (u *usernsClone) apply(a *syscall.SysProcAttr) {
	a.Cloneflags |= uintptr(u.flags)
	a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(u.uid.HostID), Size: int(u.uid.Size)}}
	a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(u.gid.HostID), Size: int(u.gid.Size)}}
	// Containers call setgroups(2); "deny" would forbid it.
	a.GidMappingsEnableSetgroups = true
}

// createUserNamespaces makes a user namespace with the given mappings and
// the namespaces in pins owned by it, and pins them all (the user
// namespace is pins[0]). A thread of a multithreaded process cannot enter
// a new user namespace, so a child process is cloned into all of them at
// once: the pod's infra process when startInfra is set (its PID namespace
// must belong to the user namespace too), else a child stopped at its exec
// so that it never runs, killed once the namespaces are pinned. The
// hostname and loopback are then set from a thread that joins the new
// namespaces: the daemon's capabilities cover namespaces a child user
// namespace owns. It returns the infra process's pid, or 0.
func createUserNamespaces(pins []nsPin, u usernsClone, hostname string, startInfra func(*usernsClone) (int, error)) (int, error) {
	for _, p := range pins {
		u.flags |= p.kind.flag
	}
	var infraPID int
	var err error
	if startInfra != nil {
		if infraPID, err = startInfra(&u); err == nil {
			err = pinFrom(infraPID, pins)
		}
	} else {
		err = pinChildNamespaces(pins, &u)
	}
	if err == nil {
		err = setHostnameAndLoopback(pins, hostname)
	}
	if err != nil {
		for _, p := range pins {
			err = errors.Join(err, unpinNamespace(p.path))
		}
		return infraPID, err
	}
	return infraPID, nil
}

func setHostnameAndLoopback(pins []nsPin, hostname string) error {
	paths := map[nsKind]string{}
	for _, p := range pins {
		if p.kind == nsNet || p.kind == nsUTS {
			paths[p.kind] = p.path
		}
	}
	return inNamespaces(paths, func() error {
		if paths[nsUTS] != "" && hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("set hostname %q: %w", hostname, err)
			}
		}
		if paths[nsNet] != "" {
			return loopbackUp()
		}
		return nil
	})
}

// pinFrom pins the namespaces of process pid.
func pinFrom(pid int, pins []nsPin) error {
	for _, p := range pins {
		if err := pinNamespace(fmt.Sprintf("/proc/%d/ns/%s", pid, p.kind.name), p.path); err != nil {
			return err
		}
	}
	return nil
}

// pinChildNamespaces clones a child into new namespaces (u), pins them,
// and kills it.
func pinChildNamespaces(pins []nsPin, u *usernsClone) error {
	errc := make(chan error, 1)
	go func() {
		// The child is traced (stopped at exec) by this thread, which is
		// never unlocked, so it dies with the goroutine; the child dies
		// first, before it could run once its tracer is gone.
		goruntime.LockOSThread()
		errc <- func() error {
			attr := &syscall.SysProcAttr{Ptrace: true, Pdeathsig: unix.SIGKILL}
			u.apply(attr)
			cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{"criserver-userns"}, SysProcAttr: attr}
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("create user namespace: %w", err)
			}
			defer func() {
				// The helper only lends its user namespace; it is done.
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}()
			var ws unix.WaitStatus
			if _, err := unix.Wait4(cmd.Process.Pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
				return fmt.Errorf("create user namespace: child did not stop at exec: %v (status %v)", err, ws)
			}
			return pinFrom(cmd.Process.Pid, pins)
		}()
	}()
	return <-errc
}

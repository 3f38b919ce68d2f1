package sandbox

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

// nsKind is one namespace type a pod may get its own of.
type nsKind struct {
	name string // the file under /proc/<tid>/ns
	flag int    // CLONE_NEW*
}

var (
	nsNet = nsKind{"net", unix.CLONE_NEWNET}
	nsIPC = nsKind{"ipc", unix.CLONE_NEWIPC}
	nsUTS = nsKind{"uts", unix.CLONE_NEWUTS}
)

// nsPin asks for one new namespace pinned at path.
type nsPin struct {
	kind nsKind
	path string
}

// createNamespaces makes the namespaces in pins and bind-mounts each at
// its path. It runs on a dedicated OS thread that unshares them, sets the
// hostname (when a UTS namespace is made) and brings loopback up (when a
// network namespace is made). The thread stays locked until its goroutine
// ends, so Go destroys it rather than reuse a thread in foreign namespaces.
func createNamespaces(pins []nsPin, hostname string) error {
	if len(pins) == 0 {
		return nil
	}
	flags := 0
	for _, p := range pins {
		flags |= p.kind.flag
	}
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(flags); err != nil {
				return fmt.Errorf("unshare namespaces: %w", err)
			}
			if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
				if err := unix.Sethostname([]byte(hostname)); err != nil {
					return fmt.Errorf("set hostname %q: %w", hostname, err)
				}
			}
			if flags&unix.CLONE_NEWNET != 0 {
				if err := loopbackUp(); err != nil {
					return err
				}
			}
			tid := unix.Gettid()
			for _, p := range pins {
				src := fmt.Sprintf("/proc/%d/task/%d/ns/%s", os.Getpid(), tid, p.kind.name)
				if err := pinNamespace(src, p.path); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	err := <-errc
	if err != nil {
		for _, p := range pins {
			err = errors.Join(err, unpinNamespace(p.path))
		}
	}
	return err
}

// loopbackUp sets IFF_UP on "lo" of the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up loopback: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: set flags: %w", err)
	}
	return nil
}

func pinNamespace(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create namespace pin %s: %w", dst, err)
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return fmt.Errorf("pin namespace %s at %s: %w", src, dst, err)
	}
	return nil
}

// unpinNamespace unmounts and removes a pin; a missing or unmounted pin is
// not an error, so teardown may repeat.
func unpinNamespace(path string) error {
	if path == "" {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount namespace pin %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace pin %s: %w", path, err)
	}
	return nil
}

// isPinned tells whether path is a namespace pin that still holds one.
func isPinned(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// inNamespaces runs fn on a dedicated OS thread that has joined each
// namespace in paths (kind → pin path; "" entries are skipped). The thread
// is never unlocked, so it dies with its goroutine.
func inNamespaces(paths map[nsKind]string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		errc <- func() error {
			for kind, p := range paths {
				if p == "" {
					continue
				}
				fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return fmt.Errorf("open namespace %s: %w", p, err)
				}
				err = unix.Setns(fd, kind.flag)
				unix.Close(fd)
				if err != nil {
					return fmt.Errorf("join namespace %s: %w", p, err)
				}
			}
			return fn()
		}()
	}()
	return <-errc
}

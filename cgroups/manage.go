package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// unifiedOnly tells that the host runs the cgroup2 hierarchy alone. Hybrid
// hosts are driven through their v1 hierarchies, as runc drives them.
func unifiedOnly() bool { return cgroups.Mode() == cgroups.Unified }

// Exists tells whether the cgroup at rel (see RelPath) is there.
func Exists(rel string) bool {
	dir := filepath.Join(Root, "memory", rel)
	if unifiedOnly() {
		dir = filepath.Join(Root, rel)
	}
	_, err := os.Stat(dir)
	return err == nil
}

// Create creates the cgroup at rel with res, or applies res to it when it
// exists.
func Create(rel string, res *specs.LinuxResources) error {
	if unifiedOnly() {
		if _, err := cgroup2.NewManager(Root, rel, cgroup2.ToResources(res)); err != nil {
			return fmt.Errorf("create cgroup %s: %w", rel, err)
		}
		return nil
	}
	if _, err := cgroup1.New(cgroup1.StaticPath(rel), res); err != nil {
		return fmt.Errorf("create cgroup %s: %w", rel, err)
	}
	return nil
}

// AddProc moves pid into the cgroup at rel.
func AddProc(rel string, pid int) error {
	if unifiedOnly() {
		m, err := cgroup2.Load(rel)
		if err != nil {
			return fmt.Errorf("load cgroup %s: %w", rel, err)
		}
		return m.AddProc(uint64(pid))
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(rel))
	if err != nil {
		return fmt.Errorf("load cgroup %s: %w", rel, err)
	}
	return cg.AddProc(uint64(pid))
}

// Delete removes the cgroup at rel from every hierarchy, including the
// unified one of a hybrid host where runc creates container cgroups too.
// A missing cgroup is not an error; neither is the root.
func Delete(rel string) error {
	if rel == "" || rel == "/" {
		return nil
	}
	if unifiedOnly() {
		m, err := cgroup2.Load(rel)
		if err == nil {
			err = m.Delete()
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete cgroup %s: %w", rel, err)
		}
		return nil
	}
	// rmdir in each hierarchy directly: the library refuses while
	// cgroup.procs still lists an unreaped zombie, which the kernel does not.
	hierarchies, err := os.ReadDir(Root)
	if err != nil {
		return fmt.Errorf("delete cgroup %s: %w", rel, err)
	}
	var errs []error
	for _, h := range hierarchies {
		if err := rmdirRetry(filepath.Join(Root, h.Name(), rel)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("delete cgroup %s: %w", rel, errors.Join(errs...))
	}
	return nil
}

// rmdirRetry removes an empty cgroup directory, retrying briefly while the
// kernel still counts an exiting task in it. A missing one is fine.
func rmdirRetry(dir string) error {
	deadline := time.Now().Add(time.Second)
	for {
		err := unix.Rmdir(dir)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
			return nil
		case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
			time.Sleep(10 * time.Millisecond)
		default:
			return fmt.Errorf("rmdir %s: %w", dir, err)
		}
	}
}

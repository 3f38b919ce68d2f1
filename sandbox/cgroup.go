package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/oci"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// podCgroup picks the pod cgroup in the driver's form. The kubelet passes
// the pod-level cgroup it made as cgroup_parent, so that is the pod cgroup;
// without one the pod gets its own under the daemon's default parent.
func podCgroup(driver, parent, podID string) (string, error) {
	if parent != "" {
		// Validated as a parent of a container ID; the same rules apply.
		if _, err := oci.CgroupsPath(driver, parent, "x"); err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return parent, nil
	}
	switch driver {
	case oci.CgroupDriverSystemd:
		return "criserver-pod" + podID + ".slice", nil
	default:
		return path.Join(oci.DefaultCgroupfsParent, "pod"+podID), nil
	}
}

// cgroupFSPath is the directory path of a pod cgroup below each hierarchy:
// the path itself for cgroupfs; the slice's nested path for systemd, as
// systemd lays slices out ("a-b.slice" → /a.slice/a-b.slice).
func cgroupFSPath(driver, cg string) string {
	if driver != oci.CgroupDriverSystemd {
		return cg
	}
	name := strings.TrimSuffix(cg, ".slice")
	if name == "-" || name == "" {
		return "/"
	}
	p := "/"
	parts := strings.Split(name, "-")
	for i := range parts {
		p = path.Join(p, strings.Join(parts[:i+1], "-")+".slice")
	}
	return p
}

// cgroupExists tells whether the pod cgroup directory is there.
func cgroupExists(fsPath string) bool {
	dir := filepath.Join(cgroupRoot, "memory", fsPath)
	if cgroups.Mode() == cgroups.Unified {
		dir = filepath.Join(cgroupRoot, fsPath)
	}
	_, err := os.Stat(dir)
	return err == nil
}

// createCgroup creates (or updates) the pod cgroup with the pod's
// resources; they already include the pod overhead.
func createCgroup(fsPath string, r *runtime.LinuxContainerResources) error {
	res, err := oci.Resources(r, oci.HostInfo{})
	if err != nil {
		return fmt.Errorf("%w: pod resources: %w", ErrInvalid, err)
	}
	if cgroups.Mode() == cgroups.Unified {
		if _, err := cgroup2.NewManager(cgroupRoot, fsPath, cgroup2.ToResources(res)); err != nil {
			return fmt.Errorf("create pod cgroup %s: %w", fsPath, err)
		}
		return nil
	}
	if _, err := cgroup1.New(cgroup1.StaticPath(fsPath), res); err != nil {
		return fmt.Errorf("create pod cgroup %s: %w", fsPath, err)
	}
	return nil
}

// addToCgroup moves pid into the pod cgroup.
func addToCgroup(fsPath string, pid int) error {
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.Load(fsPath)
		if err != nil {
			return err
		}
		return m.AddProc(uint64(pid))
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(fsPath))
	if err != nil {
		return err
	}
	return cg.AddProc(uint64(pid))
}

// deleteCgroup removes the pod cgroup from every hierarchy, including the
// unified one of a hybrid host where runc creates container cgroups too.
// A missing cgroup is not an error.
func deleteCgroup(fsPath string) error {
	if fsPath == "" || fsPath == "/" {
		return nil
	}
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.Load(fsPath)
		if err == nil {
			err = m.Delete()
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete pod cgroup %s: %w", fsPath, err)
		}
		return nil
	}
	// rmdir in each hierarchy directly: the library refuses while
	// cgroup.procs still lists an unreaped zombie, which the kernel does not.
	hierarchies, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return fmt.Errorf("delete pod cgroup %s: %w", fsPath, err)
	}
	var errs []error
	for _, h := range hierarchies {
		dir := filepath.Join(cgroupRoot, h.Name(), fsPath)
		if err := rmdirRetry(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("delete pod cgroup %s: %w", fsPath, errors.Join(errs...))
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

package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// setDevices adds the CRI devices (a directory adds every device below
// it) and their cgroup rules after a deny-all rule; privileged containers
// get every host device and an allow-all rule.
func setDevices(s *specs.Spec, devs []*runtime.Device, privileged bool, host *HostInfo) error {
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	if privileged {
		hostDevs, err := hostDevices(devRoot(host))
		if err != nil {
			return err
		}
		s.Linux.Devices = append(s.Linux.Devices, hostDevs...)
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for _, d := range devs {
		if d == nil {
			continue
		}
		if err := addDevice(s, d, privileged, host); err != nil {
			return err
		}
	}
	return nil
}

func addDevice(s *specs.Spec, d *runtime.Device, privileged bool, host *HostInfo) error {
	perms := d.GetPermissions()
	if perms == "" {
		perms = "rwm"
	}
	if strings.Trim(perms, "rwm") != "" || len(perms) > 3 {
		return invalidf("device %q: invalid permissions %q (want a subset of rwm)", d.GetHostPath(), perms)
	}
	src, dst := d.GetHostPath(), d.GetContainerPath()
	if !filepath.IsAbs(src) {
		return invalidf("device host path %q must be absolute", src)
	}
	if dst == "" {
		dst = src
	}
	if !path.IsAbs(dst) || hasDotDot(dst) {
		return invalidf("device container path %q must be absolute and without '..'", dst)
	}
	resolved, err := filepath.EvalSymlinks(src)
	if errors.Is(err, fs.ErrNotExist) {
		return invalidf("device %q does not exist", src)
	}
	if err != nil {
		return invalidf("device %q: %v", src, err)
	}
	st, err := os.Stat(resolved)
	if err != nil {
		return invalidf("device %q: %v", src, err)
	}
	var found []specs.LinuxDevice
	if st.IsDir() {
		// Only device directories are expanded; walking "/" would take ages.
		devDir := devRoot(host)
		if resolved != devDir && !strings.HasPrefix(resolved, devDir+"/") {
			return invalidf("device directory %q is not under %s", src, devDir)
		}
		found, err = devicesUnder(resolved, path.Clean(dst))
		if err != nil {
			return err
		}
	} else {
		dev, ok, err := deviceFromPath(resolved, path.Clean(dst))
		if err != nil {
			return err
		}
		if !ok {
			return invalidf("%q is not a device", src)
		}
		found = append(found, dev)
	}
	for _, dev := range found {
		s.Linux.Devices = append(s.Linux.Devices, dev)
		if !privileged {
			major, minor := dev.Major, dev.Minor
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms,
			})
		}
	}
	return nil
}

// deviceFromPath describes a block or character device node; ok is false
// for anything else.
func deviceFromPath(hostPath, containerPath string) (specs.LinuxDevice, bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(hostPath, &st); err != nil {
		return specs.LinuxDevice{}, false, invalidf("device %q: %v", hostPath, err)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		typ = "b"
	case unix.S_IFCHR:
		typ = "c"
	default:
		return specs.LinuxDevice{}, false, nil
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path: containerPath, Type: typ,
		Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, true, nil
}

// devicesUnder lists the device nodes below dir, mapped under dst.
func devicesUnder(dir, dst string) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || e.Type()&fs.ModeDevice == 0 {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		dev, ok, err := deviceFromPath(p, path.Join(dst, filepath.ToSlash(rel)))
		if err != nil || !ok {
			return err
		}
		out = append(out, dev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list devices under %s: %w", dir, err)
	}
	return out, nil
}

// hostDevices lists the host's device nodes for privileged containers,
// leaving out the ones every container gets its own of (pts, shm, mqueue)
// and the console, which runc sets up itself.
func hostDevices(devDir string) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir(devDir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != devDir && errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			switch e.Name() {
			case "pts", "shm", "mqueue", "fd", ".lxc", ".udev":
				if p != devDir {
					return fs.SkipDir
				}
			}
			return nil
		}
		if e.Name() == "console" || e.Type()&fs.ModeDevice == 0 {
			return nil
		}
		rel, err := filepath.Rel(devDir, p)
		if err != nil {
			return err
		}
		dev, ok, err := deviceFromPath(p, path.Join("/dev", filepath.ToSlash(rel)))
		if err != nil {
			return nil // a node that vanished while walking
		}
		if ok {
			out = append(out, dev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list host devices: %w", err)
	}
	return out, nil
}

// devRoot is the host's device directory, symlinks resolved.
func devRoot(host *HostInfo) string {
	d := host.DevDir
	if d == "" {
		d = "/dev"
	}
	if r, err := filepath.EvalSymlinks(d); err == nil {
		return r
	}
	return filepath.Clean(d)
}

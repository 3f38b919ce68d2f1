// Package cgroups owns the daemon's view of Linux cgroups: the driver that
// names them (cgroupfs or systemd), the paths of pod and container cgroups
// below each hierarchy, creating and deleting pod cgroups, and reading the
// usage figures and OOM counters the CRI reports. Container cgroups are
// created by the OCI runtime from the path built here.
package cgroups

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Root is where the cgroup hierarchies are mounted.
const Root = "/sys/fs/cgroup"

// Driver names how cgroups are named and created, as the kubelet's
// --cgroup-driver does.
type Driver string

// The drivers the kubelet knows.
const (
	Cgroupfs Driver = "cgroupfs"
	Systemd  Driver = "systemd"
)

// Default cgroup parents for pods that name none.
const (
	DefaultCgroupfsParent = "/criserver"
	DefaultSystemdParent  = "criserver.slice"
)

// systemdScopePrefix names the scopes of our containers: runc turns
// "<slice>:criserver:<id>" into criserver-<id>.scope under the slice.
const systemdScopePrefix = "criserver"

// ErrInvalid marks a cgroup parent or name that cannot be used.
var ErrInvalid = errors.New("invalid cgroup")

// ParseDriver checks a driver name from the configuration.
func ParseDriver(s string) (Driver, error) {
	switch d := Driver(s); d {
	case Cgroupfs, Systemd:
		return d, nil
	default:
		return "", fmt.Errorf("cgroup driver %q is neither %q nor %q", s, Cgroupfs, Systemd)
	}
}

// Path builds the OCI linux.cgroupsPath of a container (or pod cgroup,
// with id the pod's) under parent:
//   - cgroupfs: "<parent>/<id>", parent an absolute path;
//   - systemd:  "<parent>:criserver:<id>", parent a slice name.
//
// An empty parent uses DefaultCgroupfsParent / DefaultSystemdParent; the
// zero Driver is cgroupfs. A malformed parent or id wraps ErrInvalid.
func (d Driver) Path(parent, id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/:\x00") || id == "." || id == ".." {
		return "", fmt.Errorf("%w: cgroup name %q is not a valid path element", ErrInvalid, id)
	}
	switch d {
	case Cgroupfs, "":
		if parent == "" {
			parent = DefaultCgroupfsParent
		}
		if !path.IsAbs(parent) || slices.Contains(strings.Split(parent, "/"), "..") || strings.ContainsRune(parent, 0) {
			return "", fmt.Errorf("%w: cgroupfs cgroup parent %q must be an absolute path without '..'", ErrInvalid, parent)
		}
		return path.Join(parent, id), nil
	case Systemd:
		if parent == "" {
			parent = DefaultSystemdParent
		}
		if !strings.HasSuffix(parent, ".slice") || strings.ContainsAny(parent, "/:\x00") || parent == ".slice" {
			return "", fmt.Errorf("%w: systemd cgroup parent %q must be a slice name like kubepods-pod1.slice", ErrInvalid, parent)
		}
		return parent + ":" + systemdScopePrefix + ":" + id, nil
	default:
		return "", fmt.Errorf("unknown cgroup driver %q", d)
	}
}

// IsContainerCgroup reports whether rel, a cgroup's path below a
// hierarchy's mount point (as /proc/<pid>/cgroup lists it), is the cgroup
// Path gives container id under either driver: "<parent>/<id>" or
// "criserver-<id>.scope".
func IsContainerCgroup(rel, id string) bool {
	base := path.Base(rel)
	return id != "" && (base == id || base == systemdScopePrefix+"-"+id+".scope")
}

// RelPath turns an OCI cgroupsPath, or a pod's cgroup parent, into the
// cgroup's path below a hierarchy's mount point: cgroupfs paths are used
// as they are; systemd "slice:prefix:name" becomes the nested slices and
// "<prefix>-<name>.scope", and a bare slice name its nested slices.
func RelPath(cgroupsPath string) string {
	parts := strings.Split(cgroupsPath, ":")
	if len(parts) != 3 {
		if strings.HasSuffix(cgroupsPath, ".slice") && !strings.Contains(cgroupsPath, "/") {
			return expandSlice(cgroupsPath)
		}
		return path.Clean("/" + cgroupsPath)
	}
	return path.Join(expandSlice(parts[0]), parts[1]+"-"+parts[2]+".scope")
}

// expandSlice turns "a-b-c.slice" into "/a.slice/a-b.slice/a-b-c.slice",
// the way systemd nests slices.
func expandSlice(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || name == "-" {
		return "/"
	}
	var b strings.Builder
	prefix := ""
	for _, comp := range strings.Split(name, "-") {
		if prefix != "" {
			prefix += "-"
		}
		prefix += comp
		b.WriteString("/" + prefix + ".slice")
	}
	return b.String()
}

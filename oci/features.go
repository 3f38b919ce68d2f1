package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Features is what one OCI runtime can do on this host, as the runtime
// itself reports it in `<runtime> features` (runtime-spec features.md)
// and the kernel allows. A runtime without a features command (crun 1.8,
// runc 1.1) is reported as supporting none of them.
type Features struct {
	// RecursiveReadOnly: "rro" mounts (runtime lists "rro"; mount_setattr,
	// Linux 5.12).
	RecursiveReadOnly bool `json:"recursiveReadOnly"`
	// IDMappedMounts: mount uidMappings/gidMappings (runtime reports
	// linux.mountExtensions.idmap.enabled; mount_setattr, Linux 5.12).
	IDMappedMounts bool `json:"idMappedMounts"`
	// UserNamespaces: pods in a user namespace of their own. Needs the
	// runtime to create user namespaces and id-mapped mounts, and overlayfs
	// over id-mapped layers for the rootfs (Linux 5.19).
	UserNamespaces bool `json:"userNamespaces"`
}

// ProbeFeatures runs `<runtimePath> features` and combines its answer with
// what the running kernel supports.
func ProbeFeatures(ctx context.Context, runtimePath string) (Features, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, runtimePath, "features").Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return Features{}, nil // no features command
		}
		return Features{}, fmt.Errorf("run %s features: %w", runtimePath, err)
	}
	return parseFeatures(out, kernelRelease())
}

// parseFeatures reads a runtime's features document for a kernel release.
func parseFeatures(out []byte, release string) (Features, error) {
	var doc struct {
		MountOptions []string `json:"mountOptions"`
		Linux        struct {
			Namespaces      []string `json:"namespaces"`
			MountExtensions struct {
				IDMap struct {
					Enabled *bool `json:"enabled"`
				} `json:"idmap"`
			} `json:"mountExtensions"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return Features{}, fmt.Errorf("parse runtime features: %w", err)
	}
	mountSetattr := releaseAtLeast(release, 5, 12)
	idmap := doc.Linux.MountExtensions.IDMap.Enabled
	f := Features{
		RecursiveReadOnly: mountSetattr && slices.Contains(doc.MountOptions, "rro"),
		IDMappedMounts:    mountSetattr && idmap != nil && *idmap,
	}
	f.UserNamespaces = f.IDMappedMounts && slices.Contains(doc.Linux.Namespaces, "user") && releaseAtLeast(release, 5, 19)
	return f, nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// releaseAtLeast compares a kernel release like "6.1.0-18-amd64".
func releaseAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}

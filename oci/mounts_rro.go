package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// RecursiveReadOnlySupported tells whether the OCI runtime at runtimePath
// can make recursive read-only ("rro") mounts on this host: the runtime
// must list "rro" in `<runtime> features` and the kernel must have
// mount_setattr (5.12+). The cri layer advertises the feature in Status
// only when this says yes. A runtime without a features command (crun 1.8)
// is reported as unsupported.
func RecursiveReadOnlySupported(ctx context.Context, runtimePath string) (bool, error) {
	if !kernelAtLeast(5, 12) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, runtimePath, "features").Output()
	if err != nil {
		if _, ok := err.(*exec.ExitError); ok {
			return false, nil // no features command
		}
		return false, fmt.Errorf("run %s features: %w", runtimePath, err)
	}
	return featuresHaveRRO(out)
}

func featuresHaveRRO(out []byte) (bool, error) {
	var f struct {
		MountOptions []string `json:"mountOptions"`
	}
	if err := json.Unmarshal(out, &f); err != nil {
		return false, fmt.Errorf("parse runtime features: %w", err)
	}
	for _, o := range f.MountOptions {
		if o == "rro" {
			return true, nil
		}
	}
	return false, nil
}

func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return releaseAtLeast(unix.ByteSliceToString(u.Release[:]), major, minor)
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

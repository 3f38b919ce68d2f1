package oci

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/criserver/criserver/cgroups"
)

// errNotContainerInit says the pid file's process is not the container's
// init (it ended and the pid was reused, or the file is stale).
var errNotContainerInit = errors.New("not the container's init process")

// signalInit sends sig to the container's init process through a pidfd.
// The process is the container's when its cgroup names the container's ID
// (both drivers' paths end in it) while the pidfd, opened first, still
// refers to a live process: a pidfd cannot reach a later holder of the pid,
// so the signal goes to the verified process or fails with ESRCH.
func (r *Runtime) signalInit(id string, sig syscall.Signal) error {
	pid, err := readPid(filepath.Join(r.BundleDir(id), "pidfile"))
	if err != nil {
		return err
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return fmt.Errorf("cgroup of %d: %w", pid, err)
	}
	if !cgroupNamesContainer(b, id) {
		return fmt.Errorf("process %d: %w", pid, errNotContainerInit)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}

// cgroupNamesContainer reports whether a /proc/<pid>/cgroup text puts the
// process in container id's cgroup in some hierarchy.
func cgroupNamesContainer(procCgroup []byte, id string) bool {
	for line := range bytes.Lines(procCgroup) {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(strings.TrimSpace(string(line)), ":", 3)
		if len(parts) == 3 && cgroups.IsContainerCgroup(parts[2], id) {
			return true
		}
	}
	return false
}

package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/criserver/criserver/cgroups"
)

// ExitStatus is how a container ended, from conmon's exit file.
type ExitStatus struct {
	// Code is the exit code; 128+N when a signal N killed the process.
	Code int32
	// FinishedAt is when conmon wrote the exit file.
	FinishedAt time.Time
	// OOMKilled tells that the kernel's OOM killer acted in the
	// container's cgroup.
	OOMKilled bool
}

// Exited returns the container's exit status, or ok=false while it runs
// (or before it was created).
func (r *Runtime) Exited(id, cgroupsPath string) (st ExitStatus, ok bool, err error) {
	f := r.exitFile(id)
	fi, err := os.Stat(f)
	if err != nil {
		if os.IsNotExist(err) {
			return ExitStatus{}, false, nil
		}
		return ExitStatus{}, false, err
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return ExitStatus{}, false, err
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return ExitStatus{}, false, fmt.Errorf("exit file %s: %q is not an exit code", f, b)
	}
	st = ExitStatus{Code: int32(code), FinishedAt: fi.ModTime(), OOMKilled: r.oomKilled(id, cgroupsPath)}
	return st, true, nil
}

// oomKilled tells whether conmon saw an OOM event (its "oom" marker in the
// bundle) or the memory cgroup counted an OOM kill. The cgroup survives the
// container's exit until the runtime deletes it.
func (r *Runtime) oomKilled(id, cgroupsPath string) bool {
	if _, err := os.Stat(filepath.Join(r.BundleDir(id), "oom")); err == nil {
		return true
	}
	if cgroupsPath == "" {
		return false
	}
	return cgroups.OOMKills(cgroupsPath) > 0
}

// Status is the runtime's view of a container ("created", "running",
// "paused", "stopped"), from `runtime state`. Start-up uses it for a
// container whose record a crash left behind the runtime.
func (r *Runtime) Status(ctx context.Context, handler, id string) (string, error) {
	out, err := r.Command(ctx, handler, "state", id).Output()
	if err != nil {
		return "", fmt.Errorf("state of container %s: %w", id, err)
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return "", fmt.Errorf("state of container %s: %w", id, err)
	}
	return st.Status, nil
}

package oci

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/criserver/criserver/cgroups"
)

// createTimeout bounds `runtime create` under conmon when the caller's
// context has no deadline.
const createTimeout = 4 * time.Minute

// CreateOptions describes a container to create.
type CreateOptions struct {
	ID      string
	Name    string // for conmon's log messages
	Handler string
	Spec    *specs.Spec
	// LogPath is the CRI log file conmon writes (created if missing).
	LogPath string
	// Terminal, Stdin and StdinOnce come from the CRI config.
	Terminal, Stdin, StdinOnce bool
}

// syncMessage is what conmon writes on the sync pipe (API version 1):
// the container pid, or -1 and the runtime's error message.
type syncMessage struct {
	Data    int    `json:"data"`
	Message string `json:"message,omitempty"`
}

// Create writes the bundle and starts conmon, which runs `runtime create`
// and stays as the container's monitor. It returns the container's pid
// once the runtime has created it. On failure nothing is left behind.
func (r *Runtime) Create(ctx context.Context, o CreateOptions) (pid int, err error) {
	if r.conmonErr != nil {
		return 0, fmt.Errorf("conmon %q: %w", r.cfg.ConmonPath, r.conmonErr)
	}
	runtimePath, err := r.RuntimePath(o.Handler)
	if err != nil {
		return 0, err
	}
	h, _ := r.handler(o.Handler)
	bundle := r.BundleDir(o.ID)
	defer func() {
		if err != nil {
			if derr := r.Delete(context.WithoutCancel(ctx), o.Handler, o.ID); derr != nil {
				err = fmt.Errorf("%w (cleanup: %v)", err, derr)
			}
		}
	}()
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return 0, fmt.Errorf("create bundle dir: %w", err)
	}
	if err := writeSpec(bundle, o.Spec); err != nil {
		return 0, err
	}
	// Leftovers of an earlier container with this ID would be read as ours.
	for _, f := range []string{r.exitFile(o.ID), filepath.Join(bundle, "oom"), filepath.Join(bundle, "ctl")} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return 0, err
		}
	}
	if o.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(o.LogPath), 0o755); err != nil {
			return 0, fmt.Errorf("create log dir: %w", err)
		}
	}
	args := r.conmonArgs(o, runtimePath, h.RuntimeRoot)
	pid, err = r.runConmon(ctx, bundle, args)
	if err != nil {
		return 0, fmt.Errorf("runtime handler %q (%s): %w", r.ResolveHandler(o.Handler), runtimePath, err)
	}
	return pid, nil
}

// writeSpec writes the bundle's config.json once, with neither a temp file
// nor fsync: the bundle is new, it lives in the state directory, which a
// reboot clears, and a crash before the container's record is written
// leaves a bundle no record names, which start-up deletes whole.
func writeSpec(bundle string, spec *specs.Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	return nil
}

func (r *Runtime) conmonArgs(o CreateOptions, runtimePath, runtimeRoot string) []string {
	bundle := r.BundleDir(o.ID)
	logPath := o.LogPath
	if logPath == "" {
		logPath = filepath.Join(bundle, "console.log")
	}
	args := []string{
		"--api-version", "1",
		"--cid", o.ID,
		"--cuuid", r.conmonUUID(o.ID),
		"--runtime", runtimePath,
		"--bundle", bundle,
		"--container-pidfile", filepath.Join(bundle, "pidfile"),
		"--conmon-pidfile", filepath.Join(bundle, "conmon.pid"),
		"--persist-dir", bundle,
		"--log-path", "k8s-file:" + logPath,
		"--exit-dir", r.ExitDir(),
		"--socket-dir-path", r.socketDir(),
		"--runtime-arg", "--root=" + runtimeRoot,
		"--log-level", "error",
	}
	if o.Name != "" {
		args = append(args, "--name", o.Name)
	}
	if r.cfg.LogSizeMax > 0 {
		args = append(args, "--log-size-max", fmt.Sprint(r.cfg.LogSizeMax))
	}
	if r.cgroupDriver == cgroups.Systemd {
		args = append(args, "--systemd-cgroup")
	}
	if o.Terminal {
		args = append(args, "--terminal")
	}
	if o.Stdin {
		args = append(args, "--stdin")
		if !o.StdinOnce {
			args = append(args, "--leave-stdin-open")
		}
	}
	return args
}

// runConmon starts conmon and reads the container pid from its sync pipe.
// conmon forks a monitor and its first process exits at once; the monitor
// keeps the write end of the sync pipe, so an early death shows as EOF.
func (r *Runtime) runConmon(ctx context.Context, bundle string, args []string) (int, error) {
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer syncR.Close()
	startR, startW, err := os.Pipe()
	if err != nil {
		syncW.Close()
		return 0, err
	}
	defer startW.Close()

	var stderr bytes.Buffer
	cmd := exec.Command(r.conmon, args...)
	cmd.Dir = bundle // conmon writes its "oom" marker in its working directory
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	cmd.ExtraFiles = []*os.File{syncW, startR}
	cmd.Env = append(os.Environ(), "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4")
	// conmon must outlive the daemon: no Pdeathsig, own session (conmon
	// calls setsid itself in the monitor).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Start()
	syncW.Close()
	startR.Close()
	if err != nil {
		return 0, fmt.Errorf("start conmon: %w", err)
	}
	// Let conmon go on: the start pipe exists so that a later version can
	// move conmon into a cgroup before it forks.
	_, _ = startW.Write([]byte{0})
	startW.Close()
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("conmon: %w: %s", err, strings.TrimSpace(stderr.String()))
	}

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(createTimeout)
	}
	_ = syncR.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = syncR.SetReadDeadline(time.Now()) })
	defer stop()
	line, err := bufio.NewReader(syncR).ReadBytes('\n')
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, fmt.Errorf("container create timed out: %w", context.DeadlineExceeded)
		}
		return 0, fmt.Errorf("conmon exited without reporting the container pid: %v %s", err, strings.TrimSpace(stderr.String()))
	}
	var msg syncMessage
	if err := json.Unmarshal(line, &msg); err != nil {
		return 0, fmt.Errorf("decode conmon sync message %q: %w", line, err)
	}
	if msg.Data <= 0 {
		return 0, fmt.Errorf("runtime create failed: %s", strings.TrimSpace(msg.Message))
	}
	return msg.Data, nil
}

// ReopenLog asks conmon to reopen the container's log file (after the
// kubelet rotated it) and waits until the new file exists.
func (r *Runtime) ReopenLog(ctx context.Context, id, logPath string) error {
	_, ctl := r.AttachPaths(id)
	// O_NONBLOCK: opening a fifo for writing fails with ENXIO instead of
	// blocking when conmon (the reader) is gone.
	f, err := os.OpenFile(ctl, os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) || os.IsNotExist(err) {
			return fmt.Errorf("reopen log of %s: %w", id, ErrNotRunning)
		}
		return fmt.Errorf("open control fifo of %s: %w", id, err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("2 0 0\n")); err != nil {
		return fmt.Errorf("write control fifo of %s: %w", id, err)
	}
	if logPath == "" {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(logPath); err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("conmon did not reopen log %s", logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func jsonMarshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	return b, nil
}

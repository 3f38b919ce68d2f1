package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/fault"
)

// ErrNotRunning is returned by operations that need a live container.
var ErrNotRunning = errors.New("container is not running")

// maxSocketPath is the longest path a unix socket may bind (sun_path
// holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

// Runtime runs containers with an OCI runtime under one conmon each.
// Its state lives under stateDir:
//
//	containers/<id>/   the bundle: config.json, pidfile, conmon.pid, ctl fifo, attach socket, oom marker
//	exits/<id>         conmon's exit file: the exit code, written when the container exits
//	sockets/<uuid>     conmon's symlink to the bundle, short enough for the attach socket path
type Runtime struct {
	cfg          Config
	stateDir     string
	cgroupDriver cgroups.Driver
	// conmon is the resolved conmon binary; conmonErr says why it is
	// missing (reported by Create rather than at start-up, so a node
	// without conmon still answers image and pod calls).
	conmon    string
	conmonErr error

	// def is the handler behind RuntimeHandler "", chosen at start.
	def defaultChoice

	featMu sync.Mutex
	feats  map[string]Features // handler → what it supports, probed once

	// exits wakes waitExit when WatchExits sees the exit file.
	exits exitWaiters
}

// NewRuntime prepares the state directories. cfg must be validated and
// have its derived fields filled (Config.FillDerived).
func NewRuntime(ctx context.Context, cfg Config, stateDir string, cgroupDriver cgroups.Driver) (*Runtime, error) {
	if !filepath.IsAbs(stateDir) {
		return nil, fmt.Errorf("runtime state dir %q is not absolute", stateDir)
	}
	r := &Runtime{cfg: cfg, stateDir: stateDir, cgroupDriver: cgroupDriver}
	for _, d := range []string{r.bundleRoot(), r.ExitDir(), r.socketDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create runtime state dir: %w", err)
		}
	}
	r.conmon, r.conmonErr = lookPath(cfg.ConmonPath)
	if r.conmonErr != nil {
		klog.ErrorS(r.conmonErr, "conmon not found: containers cannot be created", "conmonPath", cfg.ConmonPath)
	}
	r.warnHybridCgroups()
	r.def = chooseDefaultHandler(ctx, cfg, cgroups.Root)
	logDefaultHandler(cfg, r.def)
	return r, nil
}

// warnHybridCgroups tells the operator, at start rather than at each
// CreateContainer, that crun handlers cannot run containers on this host.
func (r *Runtime) warnHybridCgroups() {
	held := cgroups.HybridUnifiedControllers(cgroups.Root)
	if len(held) == 0 {
		return
	}
	for _, name := range r.cfg.HandlerNames() {
		if filepath.Base(r.cfg.Handlers[name].RuntimePath) == "crun" {
			klog.ErrorS(nil, "crun refuses hybrid cgroup hosts whose cgroup2 hierarchy holds controllers; "+
				"mount them as cgroup v1 (hack/hybrid-cgroups.sh) to run this handler's containers",
				"handler", name, "cgroup2Controllers", held)
		}
	}
}

// Config returns the runtime configuration.
func (r *Runtime) Config() Config { return r.cfg }

func (r *Runtime) bundleRoot() string { return filepath.Join(r.stateDir, "containers") }

// ExitDir holds conmon's exit files, one per container, named by ID.
func (r *Runtime) ExitDir() string { return filepath.Join(r.stateDir, "exits") }

func (r *Runtime) socketDir() string { return filepath.Join(r.stateDir, "sockets") }

// BundleDir is the OCI bundle of a container.
func (r *Runtime) BundleDir(id string) string { return filepath.Join(r.bundleRoot(), id) }

func (r *Runtime) exitFile(id string) string { return filepath.Join(r.ExitDir(), id) }

// conmonUUID is the name conmon gives the container's socket directory:
// the ID, shortened when <socketDir>/<uuid>/attach would not fit in a
// unix socket path (deep --state directories, as in tests).
func (r *Runtime) conmonUUID(id string) string {
	room := maxSocketPath - len(r.socketDir()) - len("/") - len("/attach")
	if room < len(id) && room >= 12 {
		return id[:room]
	}
	return id
}

// AttachPaths returns conmon's attach socket (SOCK_SEQPACKET; each read
// carries one leading byte naming the stream) and its control fifo, which
// takes "<type> <height> <width>\n" lines: type 1 resizes the terminal,
// type 2 reopens the log file.
func (r *Runtime) AttachPaths(id string) (attachSocket, ctlFifo string) {
	return filepath.Join(r.socketDir(), r.conmonUUID(id), "attach"), filepath.Join(r.BundleDir(id), "ctl")
}

// Command returns the handler's runtime invoked with its --root and args.
// An unknown handler yields a command whose Start/Run fails with the error.
func (r *Runtime) Command(ctx context.Context, handler string, args ...string) *exec.Cmd {
	h, err := r.handler(handler)
	if err != nil {
		cmd := exec.CommandContext(ctx, "/nonexistent-runtime")
		cmd.Err = err
		return cmd
	}
	cmd := exec.CommandContext(ctx, h.RuntimePath, append([]string{"--root", h.RuntimeRoot}, args...)...)
	// A runtime stuck on a dead container must not hang the caller's
	// context forever, nor leave the daemon waiting on inherited pipes.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// RuntimePath is the resolved binary of a handler.
func (r *Runtime) RuntimePath(handler string) (string, error) {
	h, err := r.handler(handler)
	if err != nil {
		return "", err
	}
	return lookPath(h.RuntimePath)
}

// run runs the runtime and returns its error with its output.
func (r *Runtime) run(ctx context.Context, handler string, stdin []byte, args ...string) error {
	cmd := r.Command(ctx, handler, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(cmd.Path), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Kill sends sig to the container's init process, or with all to every
// process in its cgroup. The init process alone is signalled directly when
// it can be verified (signalInit), as `runtime kill` would signal it, which
// spares every graceful stop a run of the runtime; otherwise, and for all,
// the runtime does it.
func (r *Runtime) Kill(ctx context.Context, handler, id string, sig syscall.Signal, all bool) error {
	if !all {
		err := r.signalInit(id, sig)
		if err == nil {
			return nil
		}
		klog.V(4).InfoS("Signal the init process through the runtime", "containerID", id, "reason", err)
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	return r.run(ctx, handler, nil, append(args, id, fmt.Sprint(int(sig)))...)
}

// Stop sends sig and waits up to timeout for the container to exit, then
// kills it. It returns once conmon has written the exit file.
func (r *Runtime) Stop(ctx context.Context, handler, id string, sig syscall.Signal, timeout time.Duration) error {
	if r.exited(id) {
		return nil
	}
	if timeout > 0 && sig != syscall.SIGKILL {
		err := r.Kill(ctx, handler, id, sig, false)
		fault.Crash("container.stop.after-signal")
		if err != nil && !r.exited(id) {
			klog.V(2).InfoS("Stop signal not delivered; killing", "containerID", id, "signal", sig, "err", err)
		} else if r.waitExit(ctx, id, timeout) {
			return nil
		}
	}
	if err := r.Kill(ctx, handler, id, syscall.SIGKILL, true); err != nil && !r.exited(id) {
		// `kill --all` needs the cgroup; retry on the init process alone.
		if err2 := r.Kill(ctx, handler, id, syscall.SIGKILL, false); err2 != nil && !r.exited(id) {
			return fmt.Errorf("kill container %s: %w", id, err)
		}
	}
	if !r.waitExit(ctx, id, 30*time.Second) {
		return fmt.Errorf("container %s did not exit after SIGKILL", id)
	}
	return nil
}

// waitExit waits for the exit file until it appears, timeout passes or ctx
// ends. The exit watcher wakes it when conmon renames the file into place;
// the checks in between, 1 ms apart at first (a stat each) and then backing
// off, cover a runtime whose watcher is not running.
func (r *Runtime) waitExit(ctx context.Context, id string, timeout time.Duration) bool {
	woken, cancel := r.exits.add(id)
	defer cancel()
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		if r.exited(id) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-woken:
			// Woken once; a wake without the file (a close_write of
			// something else) must not turn the loop into a spin.
			woken = nil
		case <-time.After(interval):
		}
		if interval < 100*time.Millisecond {
			interval *= 2
		}
	}
}

func (r *Runtime) exited(id string) bool {
	_, err := os.Stat(r.exitFile(id))
	return err == nil
}

// Delete removes the container from the runtime (`runtime delete --force`),
// stops its conmon and removes the bundle, exit file and socket link.
// It succeeds for containers the runtime no longer knows. The bundle is
// made before the runtime's create and removed after its delete, so
// without one there is no runtime state to delete: a second Delete (the
// exit's, then RemoveContainer's) runs no program.
func (r *Runtime) Delete(ctx context.Context, handler, id string) error {
	return r.delete(ctx, []string{handler}, id)
}

// DeleteUnknown is Delete for a container no record names, whose handler
// is unknown: every configured handler's runtime deletes what it has of
// it before the bundle goes.
func (r *Runtime) DeleteUnknown(ctx context.Context, id string) error {
	return r.delete(ctx, r.cfg.HandlerNames(), id)
}

func (r *Runtime) delete(ctx context.Context, handlers []string, id string) error {
	if _, err := os.Stat(r.BundleDir(id)); !os.IsNotExist(err) {
		var errs []error
		for _, h := range handlers {
			if err := r.run(ctx, h, nil, "delete", "--force", id); err != nil && !isNotExist(err) {
				errs = append(errs, fmt.Errorf("delete container %s (handler %q): %w", id, h, err))
			}
		}
		if len(errs) > 0 {
			// The bundle stays: it is what a later Delete works from.
			return errors.Join(errs...)
		}
		r.killConmon(id)
	}
	if err := os.Remove(filepath.Join(r.socketDir(), r.conmonUUID(id))); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove socket link of %s: %w", id, err)
	}
	if err := os.RemoveAll(r.BundleDir(id)); err != nil {
		return fmt.Errorf("remove bundle of %s: %w", id, err)
	}
	if err := os.Remove(r.exitFile(id)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove exit file of %s: %w", id, err)
	}
	return nil
}

// isNotExist recognises the runtimes' "container does not exist" messages.
func isNotExist(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found") || strings.Contains(msg, "No such file")
}

// killConmon ends a conmon left behind (its container never started or
// was deleted under it). conmon exits by itself once its container does.
func (r *Runtime) killConmon(id string) {
	pid, err := readPid(filepath.Join(r.BundleDir(id), "conmon.pid"))
	if err != nil || !isConmon(pid) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid file %s", path)
	}
	return pid, nil
}

// isConmon guards against a recycled pid.
func isConmon(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(b)) == "conmon"
}

// ConmonPid returns the pid of the container's conmon, 0 if it is gone.
func (r *Runtime) ConmonPid(id string) int {
	pid, err := readPid(filepath.Join(r.BundleDir(id), "conmon.pid"))
	if err != nil || !isConmon(pid) {
		return 0
	}
	return pid
}

// UpdateResources changes the live cgroup limits (`runtime update --resources -`).
func (r *Runtime) UpdateResources(ctx context.Context, handler, id string, res *specs.LinuxResources) error {
	data, err := jsonMarshal(res)
	if err != nil {
		return err
	}
	return r.run(ctx, handler, data, "update", "--resources", "-", id)
}

// Features tells what the handler's runtime supports on this host
// (ProbeFeatures), asking it once per handler; "" is the default handler.
func (r *Runtime) Features(ctx context.Context, handler string) Features {
	handler = r.ResolveHandler(handler)
	r.featMu.Lock()
	defer r.featMu.Unlock()
	if f, ok := r.feats[handler]; ok {
		return f
	}
	path, err := r.RuntimePath(handler)
	if err != nil {
		return Features{}
	}
	f, err := ProbeFeatures(ctx, path)
	if err != nil {
		klog.ErrorS(err, "Probe runtime features", "handler", handler)
		return Features{}
	}
	klog.InfoS("Runtime handler features", "handler", handler, "runtime", path,
		"recursiveReadOnly", f.RecursiveReadOnly, "idMappedMounts", f.IDMappedMounts, "userNamespaces", f.UserNamespaces)
	if r.feats == nil {
		r.feats = map[string]Features{}
	}
	r.feats[handler] = f
	return f
}

// RecursiveReadOnly tells whether the handler's runtime supports "rro"
// mounts on this host.
func (r *Runtime) RecursiveReadOnly(ctx context.Context, handler string) bool {
	return r.Features(ctx, handler).RecursiveReadOnly
}

// BundleIDs lists the containers that have a bundle in the state dir.
func (r *Runtime) BundleIDs() ([]string, error) {
	entries, err := os.ReadDir(r.bundleRoot())
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

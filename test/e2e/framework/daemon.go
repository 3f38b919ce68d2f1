package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Daemon is a criserver process with its own root, state, socket, config
// and CNI configuration directory, all under one temp dir.
type Daemon struct {
	Dir        string // everything below lives here
	Root       string
	State      string
	Socket     string
	ConfigPath string
	CNIConfDir string
	LogDir     string // a place for pod log directories
	Args       []string
	Env        []string

	Runtime runtime.RuntimeServiceClient
	Image   runtime.ImageServiceClient

	t       testing.TB
	cmd     *exec.Cmd
	done    chan struct{}
	conn    *grpc.ClientConn
	logPath string
}

// Option changes how StartDaemon sets a daemon up.
type Option func(*Daemon) error

// WithConfig adds a config.d drop-in holding toml.
func WithConfig(toml string) Option {
	return func(d *Daemon) error {
		dir := filepath.Join(filepath.Dir(d.ConfigPath), "config.d")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		n, _ := filepath.Glob(filepath.Join(dir, "*.toml"))
		name := filepath.Join(dir, fmt.Sprintf("%02d-test.toml", len(n)))
		return os.WriteFile(name, []byte(toml), 0o644)
	}
}

// WithArgs adds daemon command line arguments.
func WithArgs(args ...string) Option {
	return func(d *Daemon) error { d.Args = append(d.Args, args...); return nil }
}

// WithEnv adds environment variables (KEY=value) to the daemon's.
func WithEnv(env ...string) Option {
	return func(d *Daemon) error { d.Env = append(d.Env, env...); return nil }
}

// StartDaemon starts criserver and connects to it. Cleanup stops it and
// removes its directories, unmounting what it left mounted.
func StartDaemon(t testing.TB, opts ...Option) *Daemon {
	t.Helper()
	Require(t)
	d, err := newDaemon(t)
	if err != nil {
		t.Fatalf("set up daemon dirs: %v", err)
	}
	t.Cleanup(d.cleanup)
	for _, o := range opts {
		if err := o(d); err != nil {
			t.Fatalf("daemon option: %v", err)
		}
	}
	d.Start(t)
	return d
}

func newDaemon(t testing.TB) (*Daemon, error) {
	dir, err := os.MkdirTemp("", "crie2e-")
	if err != nil {
		return nil, err
	}
	// As /var/lib is: root of a pod's user namespace must get through.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	d := &Daemon{
		t:          t,
		Dir:        dir,
		Root:       filepath.Join(dir, "root"),
		State:      filepath.Join(dir, "state"),
		Socket:     filepath.Join(dir, "state", "criserver.sock"),
		ConfigPath: filepath.Join(dir, "etc", "config.toml"),
		CNIConfDir: filepath.Join(dir, "cni"),
		LogDir:     filepath.Join(dir, "logs"),
		logPath:    filepath.Join(dir, "daemon.log"),
	}
	for _, p := range []string{filepath.Dir(d.ConfigPath), d.CNIConfDir, d.LogDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(d.ConfigPath, defaultHandlerConfig(), 0o644); err != nil {
		return nil, err
	}
	return d, nil
}

// DefaultHandlerEnv pins the handler behind RuntimeHandler "" (runc or
// crun) in every daemon the suite starts, so that the runtime tests can run
// under each; unset, the daemon chooses as it does on this host.
const DefaultHandlerEnv = "CRISERVER_E2E_DEFAULT_HANDLER"

func defaultHandlerConfig() []byte {
	h := os.Getenv(DefaultHandlerEnv)
	if h == "" {
		return nil
	}
	return fmt.Appendf(nil, "[runtime]\ndefault_handler = %q\n", h)
}

// Start runs the daemon on d's directories and waits until it serves.
func (d *Daemon) Start(t testing.TB) {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("criserver binary: %v", err)
	}
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{
		"--config", d.ConfigPath, "--root", d.Root, "--state", d.State,
		"--listen", d.Socket, "--cni-conf-dir", d.CNIConfDir, "-v=4",
	}, d.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), d.Env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start criserver: %v", err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(d.done) }()
	if err := d.connect(); err != nil {
		d.Kill(t)
		t.Fatalf("criserver did not come up: %v\n%s", err, d.Output())
	}
}

func (d *Daemon) connect() error {
	exited := false
	up := Poll(30*time.Second, func() bool {
		select {
		case <-d.done:
			exited = true
			return true
		default:
		}
		_, err := os.Stat(d.Socket)
		return err == nil
	})
	switch {
	case exited:
		return fmt.Errorf("daemon exited: %v", d.cmd.ProcessState)
	case !up:
		return fmt.Errorf("no socket at %s after 30s", d.Socket)
	}
	conn, err := grpc.NewClient("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	d.conn = conn
	d.Runtime = runtime.NewRuntimeServiceClient(conn)
	d.Image = runtime.NewImageServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = d.Runtime.Version(ctx, &runtime.VersionRequest{}, grpc.WaitForReady(true))
	return err
}

// Running reports whether the daemon process is alive.
func (d *Daemon) Running() bool {
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Pid is the daemon's process ID.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// ExitCode is the daemon's exit status once it has stopped.
func (d *Daemon) ExitCode() int { return d.cmd.ProcessState.ExitCode() }

// Stop sends SIGTERM and waits for the daemon to exit.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	d.signal(t, syscall.SIGTERM, time.Minute)
}

// Kill sends SIGKILL and waits for the daemon to exit.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	d.signal(t, syscall.SIGKILL, 30*time.Second)
}

func (d *Daemon) signal(t testing.TB, sig syscall.Signal, wait time.Duration) {
	t.Helper()
	if d.conn != nil {
		_ = d.conn.Close()
		d.conn = nil
	}
	if !d.Running() {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(wait):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("daemon did not exit %v after %v\n%s", wait, sig, d.Output())
	}
}

// Output is what the daemon has logged so far.
func (d *Daemon) Output() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// Ctx returns a context bounded for one RPC.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (d *Daemon) cleanup() {
	if d.t.Failed() {
		d.t.Logf("daemon log (%s):\n%s", d.logPath, tail(d.Output(), 200))
	}
	d.reclaim()
	d.Stop(d.t)
	if err := unmountUnder(d.Dir); err != nil {
		d.t.Logf("cleanup: %v", err)
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		d.t.Logf("cleanup: %v", err)
	}
}

// reclaim removes, through the CRI, the pods and containers a test left
// behind, so that a failed test cannot leave running pods, veths, iptables
// rules and cgroups on the host for the next one. A daemon the test already
// stopped is started again when pod namespaces are still pinned.
func (d *Daemon) reclaim() {
	if !d.Running() {
		if mounts, _ := MountsUnder(d.State); len(mounts) == 0 {
			return
		}
		d.Start(d.t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cs, err := d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{}); err == nil {
		for _, c := range cs.Containers {
			if _, err := d.Runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
				d.t.Logf("cleanup: remove container %s: %v", c.Id, err)
			}
		}
	}
	pods, err := d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		d.t.Logf("cleanup: list pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			d.t.Logf("cleanup: stop pod %s: %v", p.Id, err)
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			d.t.Logf("cleanup: remove pod %s: %v", p.Id, err)
		}
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// unmountUnder detaches every mount below dir, deepest first, so that a
// failed test cannot make RemoveAll descend into a live filesystem.
func unmountUnder(dir string) error {
	var errs []error
	mounts, err := MountsUnder(dir)
	if err != nil {
		return err
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i], err))
		}
	}
	return errors.Join(errs...)
}

package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
)

// ExecOptions describes a process to run in a running container.
type ExecOptions struct {
	Cmd []string
	// Stdin feeds the process; nil gives it /dev/null. With TTY it is
	// typed into the terminal.
	Stdin io.Reader
	// Stdout and Stderr receive its output; nil discards it. With TTY
	// both streams arrive on Stdout.
	Stdout, Stderr io.Writer
	TTY            bool
	// Resize carries terminal size changes (TTY only); the first size
	// sent before the process starts becomes its initial size.
	Resize <-chan remotecommand.TerminalSize
}

// Exec runs opts.Cmd in the running container id with the handler's
// `runtime exec` and returns the process's exit code. The process gets the
// container's own process settings (user, env, cwd, capabilities, security
// profiles) with the command replaced. Cancelling ctx kills the process;
// Exec returns only once it has been reaped.
func (r *Runtime) Exec(ctx context.Context, handler, id string, opts ExecOptions) (int, error) {
	if len(opts.Cmd) == 0 {
		return -1, errors.New("exec: empty command")
	}
	prefix, err := r.execFiles()
	if err != nil {
		return -1, err
	}
	x := &execution{prefix: prefix, opts: opts}
	defer x.remove()

	proc, err := r.execProcess(id, opts.Cmd, opts.TTY)
	if err != nil {
		return -1, err
	}
	if opts.TTY {
		return x.runTTY(ctx, r, handler, id, proc)
	}
	if err := x.writeProcess(proc); err != nil {
		return -1, err
	}
	return x.runPipes(ctx, r.Command(ctx, handler, x.args(id)...))
}

// execFiles creates the process file of one exec under <state>/exec with
// a random name and returns the prefix that the exec's files share
// (execution.processFile, pidFile, consoleSocket). They sit side by side
// in one private directory: a directory per exec would cost an inode more
// to make and to remove.
func (r *Runtime) execFiles() (string, error) {
	parent := filepath.Join(r.stateDir, "exec")
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("create exec dir: %w", err)
	}
	f, err := os.CreateTemp(parent, "*"+processSuffix)
	if err != nil {
		return "", fmt.Errorf("create exec process file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("create exec process file: %w", err)
	}
	return strings.TrimSuffix(f.Name(), processSuffix), nil
}

// processSuffix ends the name of an exec's process file.
const processSuffix = ".process.json"

// RemoveStaleExecDirs deletes the exec directories a previous daemon left
// behind when it died mid-exec; call it at start, before any exec.
func (r *Runtime) RemoveStaleExecDirs() error {
	if err := os.RemoveAll(filepath.Join(r.stateDir, "exec")); err != nil {
		return fmt.Errorf("remove stale exec dirs: %w", err)
	}
	return nil
}

// execProcess is the container's process with args and terminal replaced.
func (r *Runtime) execProcess(id string, args []string, tty bool) (*specs.Process, error) {
	data, err := os.ReadFile(filepath.Join(r.BundleDir(id), "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("exec in %s: %w", id, ErrNotRunning)
		}
		return nil, fmt.Errorf("read spec of %s: %w", id, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("parse spec of %s: %w", id, err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("spec of %s has no process", id)
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = tty
	p.ConsoleSize = nil
	return &p, nil
}

// execution is one `runtime exec` and the files it uses.
type execution struct {
	prefix string // of the exec's files (Runtime.execFiles)
	opts   ExecOptions
	// stderr keeps the tail of the runtime's own messages, which explain
	// a process that never started.
	stderr tailBuffer
}

func (x *execution) processFile() string   { return x.prefix + processSuffix }
func (x *execution) pidFile() string       { return x.prefix + ".pid" }
func (x *execution) consoleSocket() string { return x.prefix + ".sock" }

// remove deletes the exec's files.
func (x *execution) remove() {
	for _, p := range []string{x.processFile(), x.pidFile(), x.consoleSocket()} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			klog.ErrorS(err, "Remove exec file", "path", p)
		}
	}
}

func (x *execution) writeProcess(p *specs.Process) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := os.WriteFile(x.processFile(), data, 0o600); err != nil {
		return fmt.Errorf("write exec process: %w", err)
	}
	return nil
}

// args are the runtime's exec arguments; extra go before the container ID.
func (x *execution) args(id string, extra ...string) []string {
	args := []string{"exec", "--process", x.processFile(), "--pid-file", x.pidFile()}
	if x.opts.TTY {
		args = append(args, "--tty")
	}
	return append(append(args, extra...), id)
}

// cancelPidWait bounds how long a cancelled exec waits for the runtime to
// name the process it is starting.
const cancelPidWait = 2 * time.Second

// prepare makes cancellation kill the exec'd process rather than the
// runtime: the runtime is its parent and reaps it, and killing the runtime
// first would leave the process running inside the container. A cancel
// that comes while the runtime is still starting the process waits for its
// pid file: killing the runtime then would orphan the process it is about
// to start.
func (x *execution) prepare(cmd *exec.Cmd) {
	cmd.Cancel = func() error {
		for deadline := time.Now().Add(cancelPidWait); ; time.Sleep(10 * time.Millisecond) {
			if pid, err := readPid(x.pidFile()); err == nil && pid > 0 {
				if err := syscall.Kill(pid, syscall.SIGKILL); err == nil || errors.Is(err, syscall.ESRCH) {
					return nil
				}
				break
			}
			if time.Now().After(deadline) || !alive(cmd.Process.Pid) {
				break
			}
		}
		return cmd.Process.Kill()
	}
}

// alive tells whether pid still runs; a zombie waiting to be reaped
// (the runtime that exited on its own) does not.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// started reports whether the runtime got as far as starting the process.
func (x *execution) started() bool {
	pid, err := readPid(x.pidFile())
	return err == nil && pid > 0
}

// result turns the runtime's exit into the process's exit code: the
// runtime exits with the process's status (128+signal when killed).
func (x *execution) result(ctx context.Context, cmd *exec.Cmd, err error) (int, error) {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return -1, fmt.Errorf("exec %s: %w", strings.Join(x.opts.Cmd, " "), ctxErr)
	}
	if err == nil || (errors.Is(err, exec.ErrWaitDelay) && x.started()) {
		// ErrWaitDelay: the runtime exited 0 but something still held
		// its output pipes; the output was cut off there.
		return 0, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && x.started() && exitErr.ExitCode() >= 0 {
		return exitErr.ExitCode(), nil
	}
	return -1, fmt.Errorf("%s exec %s: %w: %s", filepath.Base(cmd.Path), strings.Join(x.opts.Cmd, " "), err, strings.TrimSpace(x.stderr.String()))
}

// runPipes runs the process on pipes. runc without --detach relays the
// process's stdio through pipes of its own and exits once the process has
// exited and its output is drained, so a background child that keeps
// stdout open holds the exec until it closes it (as with docker exec).
func (x *execution) runPipes(ctx context.Context, cmd *exec.Cmd) (int, error) {
	x.prepare(cmd)
	cmd.Stdout = x.opts.Stdout
	cmd.Stderr = &x.stderr
	if x.opts.Stderr != nil {
		cmd.Stderr = io.MultiWriter(x.opts.Stderr, &x.stderr)
	}
	// Stdin goes through a pipe we own: exec.Cmd would wait for its
	// copier, which blocks on a client that never closes stdin.
	var stdinW *os.File
	if x.opts.Stdin != nil {
		pr, pw, err := os.Pipe()
		if err != nil {
			return -1, err
		}
		cmd.Stdin, stdinW = pr, pw
		defer pr.Close()
	}
	if err := cmd.Start(); err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		return -1, fmt.Errorf("start exec: %w", err)
	}
	if stdinW != nil {
		cmd.Stdin.(*os.File).Close()
		go copyAndClose(stdinW, x.opts.Stdin)
	}
	err := cmd.Wait()
	if stdinW != nil {
		// Unblocks the copier's next write; its pending read ends when
		// the client's stream closes.
		stdinW.Close()
	}
	return x.result(ctx, cmd, err)
}

// copyAndClose copies until src ends, then closes dst so the process sees
// end of input.
func copyAndClose(dst io.WriteCloser, src io.Reader) {
	if _, err := io.Copy(dst, src); err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, syscall.EPIPE) {
		klog.V(4).InfoS("Exec stdin copy ended", "err", err)
	}
	dst.Close()
}

// tailBuffer keeps the last tailSize bytes written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const tailSize = 4096

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if extra := t.b.Len() - tailSize; extra > 0 {
		t.b.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}

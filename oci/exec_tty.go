package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

const (
	// initialSizeWait is how long an exec with a terminal waits for the
	// client's first size, so the process starts with the right size
	// instead of seeing 0x0 and a SIGWINCH moments later.
	initialSizeWait = 200 * time.Millisecond
	// outputDrain bounds how long output is still copied after the
	// process exited, for a background child that keeps the terminal.
	outputDrain = 2 * time.Second
)

// runTTY runs the process on a terminal and relays it to the client.
func (x *execution) runTTY(ctx context.Context, r *Runtime, handler, id string, proc *specs.Process) (int, error) {
	sz, haveSize := firstSize(x.opts.Resize)
	if haveSize {
		proc.ConsoleSize = &specs.Box{Height: uint(sz.Height), Width: uint(sz.Width)}
	}
	if err := x.writeProcess(proc); err != nil {
		return -1, err
	}
	h, err := r.handler(handler)
	if err != nil {
		return -1, err
	}
	start := x.startRelayedTTY
	if filepath.Base(h.RuntimePath) == HandlerCrun {
		start = x.startConsoleSocketTTY
	}
	cmd, master, resized, err := start(ctx, r, handler, id, sz, haveSize)
	if err != nil {
		return -1, err
	}

	output := make(chan struct{})
	go func() {
		defer close(output)
		dst := io.Writer(&x.stderr)
		if x.opts.Stdout != nil {
			dst = io.MultiWriter(x.opts.Stdout, &x.stderr)
		}
		_, _ = io.Copy(dst, master)
	}()
	defer func() {
		master.Close()
		<-output
	}()
	if x.opts.Stdin != nil {
		go func() { _, _ = io.Copy(master, x.opts.Stdin) }()
	}
	stopResize := make(chan struct{})
	defer close(stopResize)
	go resizeLoop(master, resized, x.opts.Resize, stopResize)

	err = cmd.Wait()
	select {
	case <-output:
	case <-time.After(outputDrain):
	}
	return x.result(ctx, cmd, err)
}

// startRelayedTTY starts runc, which (without --detach) creates the
// container's pty itself and relays it to its own stdio, which must be a
// terminal too: it gets the slave of a pty we own. A resize is set on our
// pty, and SIGWINCH makes runc copy it to the container's pty. It returns
// the started runtime, our pty's master, and what to call after a resize.
func (x *execution) startRelayedTTY(ctx context.Context, r *Runtime, handler, id string, sz remotecommand.TerminalSize, haveSize bool) (*exec.Cmd, *os.File, func(), error) {
	master, slave, err := openPty()
	if err != nil {
		return nil, nil, nil, err
	}
	defer slave.Close()
	if haveSize {
		_ = setWinsize(master, sz)
	}
	cmd := r.Command(ctx, handler, x.args(id)...)
	x.prepare(cmd)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		master.Close()
		return nil, nil, nil, fmt.Errorf("start exec: %w", err)
	}
	// Only runc holds the slave now (closed by the defer), so its exit
	// ends our reads with EIO.
	return cmd, master, func() { _ = cmd.Process.Signal(syscall.SIGWINCH) }, nil
}

// startConsoleSocketTTY starts crun with a console socket, over which it
// hands us the master of the container's own pty: crun before 1.9 passes
// SIGWINCH on to the process without copying the size, so a relayed
// terminal could not be resized. A resize is then set on the container's
// pty directly, and the kernel signals its process.
func (x *execution) startConsoleSocketTTY(ctx context.Context, r *Runtime, handler, id string, sz remotecommand.TerminalSize, haveSize bool) (*exec.Cmd, *os.File, func(), error) {
	sock := x.consoleSocket()
	if len(sock) > maxSocketPath {
		return nil, nil, nil, fmt.Errorf("exec console socket path %s is longer than %d bytes", sock, maxSocketPath)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listen on exec console socket: %w", err)
	}
	defer l.Close()
	cmd := r.Command(ctx, handler, x.args(id, "--console-socket", sock)...)
	x.prepare(cmd)
	cmd.Stderr = &x.stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, fmt.Errorf("start exec: %w", err)
	}
	master, err := receivePty(l, cmd)
	if err != nil {
		_ = cmd.Wait()
		return nil, nil, nil, fmt.Errorf("exec %s: %w: %s", strings.Join(x.opts.Cmd, " "), err, x.stderr.String())
	}
	if haveSize {
		_ = setWinsize(master, sz)
	}
	return cmd, master, func() {}, nil
}

// receivePty accepts the runtime's connection on l and receives the pty
// master it sends; it gives up when cmd exits without sending one.
func receivePty(l *net.UnixListener, cmd *exec.Cmd) (*os.File, error) {
	for {
		_ = l.SetDeadline(time.Now().Add(50 * time.Millisecond))
		conn, err := l.AcceptUnix()
		if err == nil {
			f, err := readPtyFd(conn)
			conn.Close()
			return f, err
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("accept console socket: %w", err)
		}
		if !alive(cmd.Process.Pid) {
			return nil, errors.New("runtime exited without sending a terminal")
		}
	}
}

// readPtyFd reads one message carrying one file descriptor (SCM_RIGHTS)
// and returns it non-blocking, so that Close interrupts reads.
func readPtyFd(conn *net.UnixConn) (*os.File, error) {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("read console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("console socket: no control message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("console socket: want one descriptor, got %d (%v)", len(fds), err)
	}
	unix.CloseOnExec(fds[0])
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// openPty returns a new pty's master (non-blocking, so Close interrupts
// reads) and its raw-mode slave.
func openPty() (master, slave *os.File, err error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	master = os.NewFile(uintptr(mfd), "ptmx")
	fail := func(err error) (*os.File, *os.File, error) {
		master.Close()
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		return fail(err)
	}
	n, err := unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	if err != nil {
		return fail(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fail(err)
	}
	// Our pty only carries bytes between runc and the client: no echo,
	// no line editing, no CR/LF translation. The container's pty does
	// the terminal work.
	if _, err := term.MakeRaw(int(slave.Fd())); err != nil {
		slave.Close()
		return fail(err)
	}
	return master, slave, nil
}

// firstSize waits briefly for the client's initial terminal size.
func firstSize(resize <-chan remotecommand.TerminalSize) (remotecommand.TerminalSize, bool) {
	if resize == nil {
		return remotecommand.TerminalSize{}, false
	}
	select {
	case sz, ok := <-resize:
		return sz, ok && sz.Width > 0 && sz.Height > 0
	case <-time.After(initialSizeWait):
		return remotecommand.TerminalSize{}, false
	}
}

// resizeLoop applies the client's terminal sizes.
func resizeLoop(master *os.File, resized func(), resize <-chan remotecommand.TerminalSize, stop <-chan struct{}) {
	if resize == nil {
		return
	}
	for {
		select {
		case <-stop:
			return
		case sz, ok := <-resize:
			if !ok {
				return
			}
			if sz.Width == 0 || sz.Height == 0 {
				continue
			}
			if setWinsize(master, sz) == nil {
				resized()
			}
		}
	}
}

func setWinsize(f *os.File, sz remotecommand.TerminalSize) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	err = rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
	})
	if err != nil {
		return err
	}
	return ioctlErr
}

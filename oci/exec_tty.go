package oci

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
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

// runTTY runs the process on a terminal. runc (without --detach) creates
// the container's pty itself and relays it to its own stdio, which must be
// a terminal too: it gets the slave of a pty we own. A resize is set on
// our pty, and SIGWINCH makes runc copy it to the container's pty.
func (x *execution) runTTY(ctx context.Context, r *Runtime, handler, id string, proc *specs.Process) (int, error) {
	sz, haveSize := firstSize(x.opts.Resize)
	if haveSize {
		proc.ConsoleSize = &specs.Box{Height: uint(sz.Height), Width: uint(sz.Width)}
	}
	if err := x.writeProcess(proc); err != nil {
		return -1, err
	}
	master, slave, err := openPty()
	if err != nil {
		return -1, err
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
		return -1, fmt.Errorf("start exec: %w", err)
	}
	// Only runc holds the slave now, so its exit ends our reads with EIO.
	slave.Close()

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
	go resizeLoop(master, cmd.Process, x.opts.Resize, stopResize)

	err = cmd.Wait()
	select {
	case <-output:
	case <-time.After(outputDrain):
	}
	return x.result(ctx, cmd, err)
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
func resizeLoop(master *os.File, runtime *os.Process, resize <-chan remotecommand.TerminalSize, stop <-chan struct{}) {
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
				_ = runtime.Signal(syscall.SIGWINCH)
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

package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// execFifo is the fifo the init process of runc and of crun blocks on
// between `create` and `start`, in the container's directory under the
// runtime's --root. runc's init writes to it and `runc start` reads; crun's
// init reads and `crun start` writes.
const execFifo = "exec.fifo"

// errNoExecFifo means the container has no exec fifo to release: it was
// started already, or its runtime keeps its state some other way.
var errNoExecFifo = errors.New("no exec fifo")

// Start runs the container's process. For runc and crun it does itself
// what their `start` does (release the init process through the exec fifo,
// then remove the fifo), which saves starting the runtime's binary: about
// 25 ms of a container's start for runc, 5 ms for crun, on a small node.
// Neither has poststart hooks to run here: the specs criserver makes have
// none. Other runtimes, and a container without its fifo, get `runtime
// start`, whose error then says what is wrong.
func (r *Runtime) Start(ctx context.Context, handler, id string) error {
	h, err := r.handler(handler)
	if err != nil {
		return err
	}
	var release func(ctx context.Context, path string, pid int) error
	switch filepath.Base(h.RuntimePath) {
	case HandlerRunc:
		release = releaseExecFifo
	case HandlerCrun:
		release = writeExecFifo
	}
	if release != nil {
		if pid, perr := readPid(filepath.Join(r.BundleDir(id), "pidfile")); perr == nil {
			switch err := release(ctx, filepath.Join(h.RuntimeRoot, id, execFifo), pid); {
			case err == nil:
				return nil
			case !errors.Is(err, errNoExecFifo):
				return fmt.Errorf("start container %s: %w", id, err)
			}
		}
	}
	return r.run(ctx, handler, nil, "start", id)
}

// writeExecFifo lets crun's init process, which holds the fifo open for
// reading, go on to exec the container's program: one byte written, then
// the fifo removed, which makes crun report the container as running. It
// returns once the init process has closed its end, which it does as it
// execs the program (or dies), so that the program runs when Start
// returns, as after `runc start`.
func writeExecFifo(ctx context.Context, path string, pid int) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return errNoExecFifo
	case errors.Is(err, unix.ENXIO):
		// No reader: the init process is gone.
		return fmt.Errorf("container process %d exited before start", pid)
	case err != nil:
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte{'0'}); err != nil {
		return fmt.Errorf("write exec fifo: %w", err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove exec fifo: %w", err)
	}
	return waitReaderGone(ctx, fd, pid)
}

// waitReaderGone waits until the fifo written through fd has no reader
// left (poll reports POLLERR on a pipe's write end then), the reading
// process pid is gone, or ctx ends.
func waitReaderGone(ctx context.Context, fd, pid int) error {
	fds := []unix.PollFd{{Fd: int32(fd)}}
	for {
		n, err := unix.Poll(fds, 20)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll exec fifo: %w", err)
		}
		if n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !alive(pid) {
			return nil // exited at once; the exit watcher reports it
		}
	}
}

// releaseExecFifo lets the container's init process, pid, go on to exec
// the container's program. The init process opens the fifo for writing,
// writes one byte and closes it by exec'ing; end of file after that byte
// means the program has been exec'd, as when `runc start` returns.
func releaseExecFifo(ctx context.Context, path string, pid int) error {
	// Non-blocking, so that a dead init process (no writer ever) cannot
	// hang the open; poll then waits for the writer.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return errNoExecFifo
	}
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	got, err := drainExecFifo(ctx, fd, pid)
	if err != nil {
		return err
	}
	if !got {
		return fmt.Errorf("container process %d exited before start", pid)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove exec fifo: %w", err)
	}
	return nil
}

// drainExecFifo reads fd until the writer has written and closed it, the
// init process is gone, or ctx ends; it reports whether any byte came.
func drainExecFifo(ctx context.Context, fd, pid int) (got bool, err error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 20)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return got, fmt.Errorf("poll exec fifo: %w", err)
		}
		if n > 0 {
			read, done, err := readExecFifo(fd)
			got = got || read
			if err != nil || done {
				return got, err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return got, err
		}
		if !alive(pid) {
			// It may have written and exited between two polls.
			read, _, err := readExecFifo(fd)
			return got || read, err
		}
	}
}

// readExecFifo reads what is there: read says whether any byte came, done
// that the writer came and went (end of file).
func readExecFifo(fd int) (read, done bool, err error) {
	var buf [16]byte
	for {
		n, err := unix.Read(fd, buf[:])
		switch {
		case n > 0:
			read = true
		case errors.Is(err, unix.EAGAIN):
			return read, false, nil
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return read, false, fmt.Errorf("read exec fifo: %w", err)
		default: // n == 0: no writer left
			return read, true, nil
		}
	}
}

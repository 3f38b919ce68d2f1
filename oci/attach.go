package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// conmon's attach socket protocol (SOCK_SEQPACKET): every packet conmon
// sends starts with one byte naming the stream; what the client sends is
// written to the container's stdin as is. Shutting down the client's write
// side is end of input: conmon then closes the container's stdin unless it
// was started with --leave-stdin-open (stdin_once false).
const (
	attachStdout byte = 2
	attachStderr byte = 3
	// attachPacket holds the largest packet conmon sends: its stdio
	// buffer plus the stream byte.
	attachPacket = 32*1024 + 1
	// attachStdinChunk keeps each stdin packet well under what conmon
	// reads in one go, so no packet is truncated.
	attachStdinChunk = 4096
)

// AttachOptions says which of the container's streams to join.
type AttachOptions struct {
	// Stdin is copied to the container's stdin; its end is passed on as
	// end of input. nil leaves stdin alone.
	Stdin io.Reader
	// Stdout and Stderr receive the container's live output; nil drops a
	// stream. A terminal container's output all arrives on Stdout.
	Stdout, Stderr io.Writer
	// Resize carries terminal size changes for a terminal container.
	Resize <-chan remotecommand.TerminalSize
}

// Attach joins the running container's stdio through its conmon until the
// container exits or ctx is cancelled (the client went away). Detaching
// leaves the container running.
func (r *Runtime) Attach(ctx context.Context, id string, opts AttachOptions) error {
	sockPath, ctlPath := r.AttachPaths(id)
	conn, err := dialSeqpacket(sockPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("attach to %s: %w", id, ErrNotRunning)
		}
		return fmt.Errorf("attach to %s: %w", id, err)
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		// Closing the socket is what interrupts the copies.
		<-ctx.Done()
		conn.Close()
	}()
	if opts.Stdin != nil {
		// Not waited for: it may be blocked reading a client that sends
		// nothing, until the session closes that stream.
		go func() {
			if copyStdinPackets(ctx, conn, opts.Stdin) == nil {
				// A session that closed first has nothing left to tell.
				_ = conn.CloseWrite()
			}
		}()
	}
	if opts.Resize != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resizeViaCtl(ctx, ctlPath, opts.Resize)
		}()
	}
	err = copyAttachOutput(conn, opts.Stdout, opts.Stderr)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// dialSeqpacket connects through /proc/self/fd so a socket path longer
// than sun_path still works.
func dialSeqpacket(path string) (*net.UnixConn, error) {
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH, 0)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	addr := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
	return net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: addr, Net: "unixpacket"})
}

// copyStdinPackets writes src to the socket in packets conmon reads whole.
func copyStdinPackets(ctx context.Context, conn *net.UnixConn, src io.Reader) error {
	buf := make([]byte, attachStdinChunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// copyAttachOutput demultiplexes conmon's packets until it hangs up.
func copyAttachOutput(conn *net.UnixConn, stdout, stderr io.Writer) error {
	buf := make([]byte, attachPacket)
	for {
		n, err := conn.Read(buf)
		if n > 1 {
			var dst io.Writer
			switch buf[0] {
			case attachStdout:
				dst = stdout
			case attachStderr:
				dst = stderr
			}
			if dst != nil {
				if _, werr := dst.Write(buf[1:n]); werr != nil {
					return fmt.Errorf("write attach output: %w", werr)
				}
			}
		}
		if err == io.EOF || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read attach socket: %w", err)
		}
	}
}

// resizeViaCtl writes conmon's resize command, "1 <height> <width>\n",
// to the container's control fifo for each size.
func resizeViaCtl(ctx context.Context, ctlPath string, resize <-chan remotecommand.TerminalSize) {
	var ctl *os.File
	defer func() {
		if ctl != nil {
			ctl.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case sz, ok := <-resize:
			if !ok {
				return
			}
			if ctl == nil {
				// O_NONBLOCK: a fifo with no reader (conmon gone)
				// fails at once instead of blocking the open.
				f, err := os.OpenFile(ctlPath, os.O_WRONLY|unix.O_NONBLOCK, 0)
				if err != nil {
					continue
				}
				ctl = f
			}
			fmt.Fprintf(ctl, "1 %d %d\n", sz.Height, sz.Width)
		}
	}
}

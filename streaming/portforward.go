package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// dialTimeout bounds a connect to the pod's port: loopback answers at
// once, so anything slower is a port nobody listens on behind a filter.
const dialTimeout = 10 * time.Second

// PortForward connects to port on the loopback of the network namespace
// at netnsPath ("" means the host's, for host-network pods) and copies
// between that connection and stream until the pod's side is done or the
// client goes away. A dial failure is returned before anything is copied,
// so the caller can report it on this stream alone.
func PortForward(ctx context.Context, netnsPath string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("invalid port %d", port)
	}
	conn, err := DialLoopback(ctx, netnsPath, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	return proxy(ctx, conn, stream)
}

// DialLoopback opens a TCP connection to 127.0.0.1:port inside the network
// namespace at netnsPath, or on the host when netnsPath is "".
func DialLoopback(ctx context.Context, netnsPath string, port int32) (net.Conn, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	d := net.Dialer{Timeout: dialTimeout}
	if netnsPath == "" {
		return d.DialContext(ctx, "tcp", addr)
	}
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	// The socket is created in whatever namespace the calling thread is
	// in, so dial from a goroutine locked to a thread that has joined the
	// pod's namespace. If the thread cannot return to the host namespace
	// it stays locked, and Go ends it with the goroutine.
	go func() {
		goruntime.LockOSThread()
		conn, restored, err := dialInNetNS(ctx, &d, netnsPath, addr)
		if restored {
			goruntime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

func dialInNetNS(ctx context.Context, d *net.Dialer, netnsPath, addr string) (conn net.Conn, restored bool, err error) {
	host, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, true, fmt.Errorf("open host network namespace: %w", err)
	}
	defer host.Close()
	pod, err := os.Open(netnsPath)
	if err != nil {
		return nil, true, fmt.Errorf("open pod network namespace: %w", err)
	}
	defer pod.Close()
	if err := unix.Setns(int(pod.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("enter network namespace %s: %w", netnsPath, err)
	}
	conn, err = d.DialContext(ctx, "tcp", addr)
	if err != nil {
		err = fmt.Errorf("dial %s in network namespace %s: %w", addr, netnsPath, err)
	}
	if serr := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); serr != nil {
		return conn, false, err
	}
	return conn, true, err
}

// proxy copies both ways. The pod's side closing its write half ends the
// session; the client closing its write half is passed on as a TCP
// half-close so request/response protocols see the end of the request.
func proxy(ctx context.Context, conn net.Conn, stream io.ReadWriteCloser) error {
	toPod := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok && err == nil {
			err = cw.CloseWrite()
		} else {
			// The client's stream broke: nothing more will be sent,
			// and nobody is left to read the pod's answer.
			conn.Close()
		}
		toPod <- err
	}()
	fromPod := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		fromPod <- err
	}()
	select {
	case err := <-fromPod:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("copy from pod: %w", err)
		}
		return nil
	case <-ctx.Done():
		conn.Close()
		<-fromPod //nolint:errcheck // after our own close the copy's error says nothing
		return ctx.Err()
	}
}

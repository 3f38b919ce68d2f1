package streaming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	// client-go's SPDY dialer still returns apimachinery's type.
	"k8s.io/apimachinery/pkg/util/httpstream" //nolint:staticcheck // SA1019, see above
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"
)

// fakeRuntime echoes stdin to stdout, names the command on stderr, and
// exits with the code given as "exit N".
type fakeRuntime struct {
	execDone chan error // receives each Exec's context error
}

func (f *fakeRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan TerminalSize) error {
	defer func() {
		if f.execDone != nil {
			f.execDone <- ctx.Err()
		}
	}()
	if len(cmd) == 1 && cmd[0] == "block" {
		<-ctx.Done()
		return ctx.Err()
	}
	if errw != nil {
		fmt.Fprintf(errw, "%s %s", id, strings.Join(cmd, " "))
	}
	if in != nil && out != nil {
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
	}
	var code int
	if _, err := fmt.Sscanf(strings.Join(cmd, " "), "exit %d", &code); err == nil && code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("exit status %d", code), Code: code}
	}
	return nil
}

func (f *fakeRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan TerminalSize) error {
	return f.Exec(ctx, id, []string{"attach"}, in, out, errw, tty, resize)
}

func (f *fakeRuntime) PortForward(ctx context.Context, pod string, port int32, stream io.ReadWriteCloser) error {
	return PortForward(ctx, "", port, stream)
}

func startServer(t *testing.T, rt Runtime) *Server {
	t.Helper()
	cfg := DefaultConfig()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(rt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

type executorFunc func(t *testing.T, rawURL string) remotecommand.Executor

var executors = map[string]executorFunc{
	"spdy": func(t *testing.T, rawURL string) remotecommand.Executor {
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		e, err := remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, u)
		if err != nil {
			t.Fatal(err)
		}
		return e
	},
	// kubectl 1.31+: v5 over WebSocket, served by serveV5.
	"websocket-v5": func(t *testing.T, rawURL string) remotecommand.Executor {
		e, err := remotecommand.NewWebSocketExecutor(&rest.Config{}, http.MethodGet, rawURL)
		if err != nil {
			t.Fatal(err)
		}
		return e
	},
	// The library serves the v4 channel protocol over WebSocket.
	"websocket": func(t *testing.T, rawURL string) remotecommand.Executor {
		e, err := remotecommand.NewWebSocketExecutorForProtocols(&rest.Config{}, http.MethodGet, rawURL, "v4.channel.k8s.io")
		if err != nil {
			t.Fatal(err)
		}
		return e
	},
}

func TestExecProtocols(t *testing.T) {
	s := startServer(t, &fakeRuntime{})
	for name, newExec := range executors {
		t.Run(name, func(t *testing.T) {
			req := &runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"cat"}, Stdout: true, Stderr: true, Stdin: true}
			opts := remotecommand.StreamOptions{Stdin: strings.NewReader("hello")}
			want := "hello"
			if name == "websocket" {
				// v4 over WebSocket cannot half-close stdin (that needs
				// v5.channel.k8s.io), so a cat would never see EOF.
				req.Stdin, opts.Stdin, want = false, nil, ""
			}
			resp, err := s.GetExec(req)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(resp.Url, "http://127.0.0.1:") {
				t.Fatalf("url %q is not absolute on loopback", resp.Url)
			}
			var stdout, stderr bytes.Buffer
			opts.Stdout, opts.Stderr = &stdout, &stderr
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := newExec(t, resp.Url).StreamWithContext(ctx, opts); err != nil {
				t.Fatal(err)
			}
			if stdout.String() != want || stderr.String() != "c1 cat" {
				t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
			}
		})
	}
}

func TestExecExitCode(t *testing.T) {
	s := startServer(t, &fakeRuntime{})
	for name, newExec := range executors {
		t.Run(name, func(t *testing.T) {
			resp, err := s.GetExec(&runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"exit", "3"}, Stderr: true})
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			err = newExec(t, resp.Url).StreamWithContext(context.Background(), remotecommand.StreamOptions{Stderr: &stderr})
			var exitErr utilexec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 3 {
				t.Fatalf("got %v (%T), want exit code 3", err, err)
			}
		})
	}
}

func TestTokenSingleUse(t *testing.T) {
	s := startServer(t, &fakeRuntime{})
	for first, newFirst := range executors {
		for second, newSecond := range executors {
			resp, err := s.GetExec(&runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"true"}, Stderr: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := newFirst(t, resp.Url).StreamWithContext(context.Background(), remotecommand.StreamOptions{Stderr: io.Discard}); err != nil {
				t.Fatalf("%s: %v", first, err)
			}
			if err := newSecond(t, resp.Url).StreamWithContext(context.Background(), remotecommand.StreamOptions{Stderr: io.Discard}); err == nil {
				t.Fatalf("URL used over %s served again over %s", first, second)
			}
		}
	}
}

func TestTokenExpires(t *testing.T) {
	ss := newSessions()
	ss.add("http://127.0.0.1:1/exec/tok", "req")
	ss.byToken["tok"] = session{req: "req", expires: time.Now().Add(-time.Second)}
	r := httptest.NewRequest(http.MethodGet, "/exec/tok", nil)
	if _, ok := ss.take(r); ok {
		t.Fatal("an expired session was admitted")
	}
}

func TestExecClientHangupCancels(t *testing.T) {
	rt := &fakeRuntime{execDone: make(chan error, 1)}
	s := startServer(t, rt)
	resp, err := s.GetExec(&runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"block"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	executors["spdy"](t, resp.Url).StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: io.Discard})
	select {
	case err := <-rt.execDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("exec context: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("exec still running after the client went away")
	}
}

func TestPortForwardSPDY(t *testing.T) {
	s := startServer(t, &fakeRuntime{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pong")
	}))
	defer backend.Close()
	backendPort := backend.Listener.Addr().(*net.TCPAddr).Port
	closed := freePort(t)

	resp, err := s.GetPortForward(&runtime.PortForwardRequest{PodSandboxId: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	conn := dialPortForward(t, resp.Url)
	// The unreachable port fails on its own streams...
	if _, err := forwardRequest(conn, "1", closed, "GET / HTTP/1.0\r\n\r\n"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("forward to a closed port: %v, want connection refused", err)
	}
	// ...while the session keeps serving the other port.
	out, err := forwardRequest(conn, "2", backendPort, "GET / HTTP/1.0\r\n\r\n")
	if err != nil || !strings.HasSuffix(out, "pong") {
		t.Fatalf("forward after a failed stream: %q, %v", out, err)
	}
}

func TestPortForwardConcurrent(t *testing.T) {
	s := startServer(t, &fakeRuntime{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pong")
	}))
	defer backend.Close()
	resp, err := s.GetPortForward(&runtime.PortForwardRequest{PodSandboxId: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	local := forward(t, resp.Url, backend.Listener.Addr().(*net.TCPAddr).Port)
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- get(fmt.Sprintf("http://127.0.0.1:%d/", local[0]), "pong") }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// dialPortForward opens a raw SPDY port-forward session, so a test can see
// each stream's error the way the kubelet does, without client-go's
// portforward tearing the whole session down on the first error.
func dialPortForward(t *testing.T, rawURL string) httpstream.Connection {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u).Dial("portforward.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// forwardRequest sends req to port over a new stream pair and returns the
// answer, or the error the server reported on the pair's error stream.
func forwardRequest(conn httpstream.Connection, id string, port int, req string) (string, error) {
	h := http.Header{}
	h.Set("streamType", "error")
	h.Set("port", fmt.Sprint(port))
	h.Set("requestID", id)
	errStream, err := conn.CreateStream(h)
	if err != nil {
		return "", err
	}
	errStream.Close()
	errc := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(errStream)
		errc <- string(b)
	}()
	h.Set("streamType", "data")
	data, err := conn.CreateStream(h)
	if err != nil {
		// The server may answer the pair (and reset it) before the
		// data stream's reply arrives: its error stream says why.
		if msg := <-errc; msg != "" {
			return "", errors.New(msg)
		}
		return "", err
	}
	io.WriteString(data, req)
	data.Close()
	out, _ := io.ReadAll(data)
	if msg := <-errc; msg != "" {
		return string(out), errors.New(msg)
	}
	return string(out), nil
}

func get(u, want string) error {
	r, err := http.Get(u)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if string(b) != want {
		return fmt.Errorf("body %q, want %q", b, want)
	}
	return nil
}

// forward starts a client-go port-forward to rawURL for the remote ports
// and returns the local ports in the same order.
func forward(t *testing.T, rawURL string, remote ...int) []int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	var ports []string
	for _, p := range remote {
		ports = append(ports, fmt.Sprintf("0:%d", p))
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, ports, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	t.Cleanup(func() { close(stop); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward: %v", err)
	}
	fwd, err := pf.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	local := make([]int, len(fwd))
	for i, p := range fwd {
		local[i] = int(p.Local)
	}
	return local
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

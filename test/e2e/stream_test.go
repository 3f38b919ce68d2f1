package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"

	"github.com/criserver/criserver/test/e2e/framework"
)

// streamProtocols are the client-go executors the kubelet's clients use:
// SPDY, WebSocket with v5 (kubectl 1.31+) and with v4.
var streamProtocols = map[string]func(t *testing.T, u string) remotecommand.Executor{
	"websocket-v5": func(t *testing.T, u string) remotecommand.Executor {
		e, err := remotecommand.NewWebSocketExecutor(&rest.Config{}, http.MethodGet, u)
		if err != nil {
			t.Fatal(err)
		}
		return e
	},
	"spdy": func(t *testing.T, u string) remotecommand.Executor {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		e, err := remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, pu)
		if err != nil {
			t.Fatal(err)
		}
		return e
	},
	"websocket": func(t *testing.T, u string) remotecommand.Executor {
		e, err := remotecommand.NewWebSocketExecutorForProtocols(&rest.Config{}, http.MethodGet, u, "v4.channel.k8s.io")
		if err != nil {
			t.Fatal(err)
		}
		return e
	},
}

// sizeQueue hands the executor terminal sizes, one per Next call.
type sizeQueue struct {
	sizes chan remotecommand.TerminalSize
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	sz, ok := <-q.sizes
	if !ok {
		return nil
	}
	return &sz
}

func streamCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (e *ctrEnv) execURL(t *testing.T, req *runtime.ExecRequest) string {
	t.Helper()
	resp, err := e.d.Runtime.Exec(framework.Ctx(t), req)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if !strings.HasPrefix(resp.Url, "http://127.0.0.1:") {
		t.Fatalf("Exec url %q is not an absolute loopback URL", resp.Url)
	}
	return resp.Url
}

func TestStreamExec(t *testing.T) {
	framework.Require(t)
	e := newCtrEnv(t)
	id := e.run(t, e.config("exec", "sleep 3600"))

	for name, executor := range streamProtocols {
		t.Run(name+"/stdout-stderr", func(t *testing.T) {
			u := e.execURL(t, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo out; echo err >&2"}, Stdout: true, Stderr: true})
			var stdout, stderr bytes.Buffer
			if err := executor(t, u).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
				t.Fatal(err)
			}
			if stdout.String() != "out\n" || stderr.String() != "err\n" {
				t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
			}
		})
		t.Run(name+"/exit-code", func(t *testing.T) {
			u := e.execURL(t, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "exit 3"}, Stdout: true})
			err := executor(t, u).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{Stdout: io.Discard})
			var exitErr utilexec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 3 {
				t.Fatalf("got %v, want exit code 3", err)
			}
		})
		t.Run(name+"/tty-resize", func(t *testing.T) {
			// The shell waits for the client's size, then for the resize,
			// which is sent once the first size was printed, so no timing
			// decides the outcome. (crun 1.8 hands over the terminal as the
			// process starts, so the first size may land a moment later;
			// with runc the process starts with it.)
			script := `for i in $(seq 100); do [ "$(stty size 2>/dev/null)" = "24 80" ] && break; sleep 0.02; done; stty size; while [ "$(stty size)" = "24 80" ]; do sleep 0.05; done; stty size`
			u := e.execURL(t, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", script}, Stdout: true, Stdin: true, Tty: true})
			q := &sizeQueue{sizes: make(chan remotecommand.TerminalSize, 2)}
			q.sizes <- remotecommand.TerminalSize{Width: 80, Height: 24}
			out := &notifyWriter{want: "24 80", seen: make(chan struct{})}
			go func() {
				<-out.seen
				q.sizes <- remotecommand.TerminalSize{Width: 100, Height: 30}
			}()
			err := executor(t, u).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{
				Stdin: blockingStdin(t), Stdout: out, Tty: true, TerminalSizeQueue: q,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.ReplaceAll(out.String(), "\r", ""); got != "24 80\n30 100\n" {
				t.Fatalf("stty size printed %q, want 24 80 then 30 100", got)
			}
		})
	}
	// Half-closing stdin needs SPDY or v5 over WebSocket.
	for _, name := range []string{"spdy", "websocket-v5"} {
		t.Run(name+"/stdin", func(t *testing.T) {
			u := e.execURL(t, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "read a; echo got:$a; cat"}, Stdin: true, Stdout: true})
			var out bytes.Buffer
			err := streamProtocols[name](t, u).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{
				Stdin: strings.NewReader("hello\nrest\n"), Stdout: &out,
			})
			if err != nil || out.String() != "got:hello\nrest\n" {
				t.Fatalf("output %q, err %v", out.String(), err)
			}
		})
	}
	t.Run("token-single-use", func(t *testing.T) {
		u := e.execURL(t, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
		if err := streamProtocols["spdy"](t, u).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{Stdout: io.Discard}); err != nil {
			t.Fatal(err)
		}
		if err := streamProtocols["spdy"](t, u).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{Stdout: io.Discard}); err == nil {
			t.Fatal("a used URL served a second session")
		}
	})
}

// blockingStdin is a client stdin that sends nothing until the test ends.
func blockingStdin(t *testing.T) io.Reader {
	r, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	return r
}

func TestStreamExecSync(t *testing.T) {
	framework.Require(t)
	e := newCtrEnv(t)
	id := e.run(t, e.config("execsync", "sleep 3600"))
	ctx := framework.Ctx(t)
	resp, err := e.d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Stdout) != "out\n" || string(resp.Stderr) != "err\n" || resp.ExitCode != 3 {
		t.Fatalf("ExecSync = %q %q %d", resp.Stdout, resp.Stderr, resp.ExitCode)
	}
	start := time.Now()
	_, err = e.d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "4244"}, Timeout: 1})
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 10*time.Second {
		t.Fatalf("ExecSync past its timeout: %v after %v", err, time.Since(start))
	}
	if pids := cmdlinePids("sleep\x004244"); len(pids) > 0 {
		t.Fatalf("timed-out exec still running: %v", pids)
	}
}

func TestStreamAttach(t *testing.T) {
	framework.Require(t)
	e := newCtrEnv(t)
	cfg := e.config("attach", "while read l; do echo got:$l; echo err:$l >&2; done")
	cfg.Stdin = true
	id := e.run(t, cfg)

	for _, proto := range []string{"spdy", "websocket-v5"} {
		resp, err := e.d.Runtime.Attach(framework.Ctx(t), &runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		stdinR, stdinW := io.Pipe()
		var stdout, stderr lockedBuffer
		ctx, cancel := context.WithCancel(streamCtx(t))
		done := make(chan error, 1)
		go func() {
			done <- streamProtocols[proto](t, resp.Url).StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &stdout, Stderr: &stderr})
		}()
		io.WriteString(stdinW, proto+"\n")
		eventually(t, proto+" attach output", func() bool {
			return stdout.String() == "got:"+proto+"\n" && stderr.String() == "err:"+proto+"\n"
		})
		// Detach: the container keeps running, and its stdin stays open
		// for the next client (stdin_once is false).
		cancel()
		<-done
		if st, _ := e.status(t, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("container %s after detach", st.State)
		}
	}
}

func TestStreamPortForward(t *testing.T) {
	framework.Require(t)
	e := newCtrEnv(t)
	httpd := e.run(t, e.config("httpd", "httpd -p 8080 -h /www; httpd -f -p 8081 -h /www"))
	// client-go ends a whole port-forward on the first refused stream,
	// so only start forwarding once both servers listen.
	e.waitServing(t, httpd, 8080)
	e.waitServing(t, httpd, 8081)

	resp, err := e.d.Runtime.PortForward(framework.Ctx(t), &runtime.PortForwardRequest{PodSandboxId: e.pod, Port: []int32{8080}})
	if err != nil {
		t.Fatal(err)
	}
	resp2, err := e.d.Runtime.PortForward(framework.Ctx(t), &runtime.PortForwardRequest{PodSandboxId: e.pod, Port: []int32{8081}})
	if err != nil {
		t.Fatal(err)
	}
	// Two sessions at once, several connections each.
	local := forwardPorts(t, resp.Url, 8080)
	local2 := forwardPorts(t, resp2.Url, 8081)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for _, p := range []int{local[0], local2[0], local[0], local2[0], local[0], local2[0]} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := httpGetWithin(fmt.Sprintf("http://127.0.0.1:%d/index.html", p), "hello from busybox\n", 15*time.Second)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestStreamPortForwardHostNetwork(t *testing.T) {
	framework.Require(t)
	e := newCtrEnv(t)
	podCf := e.d.PodConfig(t, "hostnet")
	podCf.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	pr, err := e.d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: podCf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := framework.Ctx(t)
		_, _ = e.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pr.PodSandboxId})
		_, _ = e.d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pr.PodSandboxId})
	})
	port := freePort(t)
	cfg := e.config("hostnet-httpd", fmt.Sprintf("httpd -f -p 127.0.0.1:%d -h /www", port))
	cr, err := e.d.Runtime.CreateContainer(framework.Ctx(t), &runtime.CreateContainerRequest{PodSandboxId: pr.PodSandboxId, Config: cfg, SandboxConfig: podCf})
	if err != nil {
		t.Fatal(err)
	}
	e.start(t, cr.ContainerId)
	e.waitServing(t, cr.ContainerId, port)

	resp, err := e.d.Runtime.PortForward(framework.Ctx(t), &runtime.PortForwardRequest{PodSandboxId: pr.PodSandboxId, Port: []int32{int32(port)}})
	if err != nil {
		t.Fatal(err)
	}
	local := forwardPorts(t, resp.Url, port)
	if _, err := httpGetWithin(fmt.Sprintf("http://127.0.0.1:%d/index.html", local[0]), "hello from busybox\n", 15*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestStreamErrors(t *testing.T) {
	framework.Require(t)
	e := newCtrEnv(t)
	id := e.run(t, e.config("done", "exit 0"))
	e.waitExit(t, id, 30*time.Second)
	ctx := framework.Ctx(t)
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"exec unknown", func() error {
			_, err := e.d.Runtime.Exec(ctx, &runtime.ExecRequest{ContainerId: "nosuch", Cmd: []string{"true"}, Stdout: true})
			return err
		}, codes.NotFound},
		{"exec stopped", func() error {
			_, err := e.d.Runtime.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
			return err
		}, codes.FailedPrecondition},
		{"exec sync stopped", func() error {
			_, err := e.d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}})
			return err
		}, codes.FailedPrecondition},
		{"attach stopped", func() error {
			_, err := e.d.Runtime.Attach(ctx, &runtime.AttachRequest{ContainerId: id, Stdout: true})
			return err
		}, codes.FailedPrecondition},
		{"port-forward unknown pod", func() error {
			_, err := e.d.Runtime.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: "nosuch", Port: []int32{80}})
			return err
		}, codes.NotFound},
	}
	for _, tt := range tests {
		if err := tt.call(); status.Code(err) != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	_, err := e.d.Runtime.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: e.pod, Port: []int32{80}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("port-forward to a stopped pod: %v, want FailedPrecondition", err)
	}
}

// A client that vanishes mid-session leaves no exec process and no fd in
// the daemon.
func TestStreamBrokenClient(t *testing.T) {
	framework.Require(t)
	e := newCtrEnv(t)
	id := e.run(t, e.config("broken", "sleep 3600"))
	// Warm up the stream server's listener and the gRPC connection.
	u := e.execURL(t, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
	if err := streamProtocols["spdy"](t, u).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{Stdout: io.Discard}); err != nil {
		t.Fatal(err)
	}
	fdsBefore := fdCount(t, e.d.Pid())

	for _, c := range []struct {
		proto string
		tty   bool
	}{{"spdy", false}, {"spdy", true}, {"websocket-v5", false}, {"websocket-v5", true}} {
		tty := c.tty
		u := e.execURL(t, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sleep", "4245"}, Stdin: true, Stdout: true, Tty: tty})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- streamProtocols[c.proto](t, u).StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: blockingStdin(t), Stdout: io.Discard, Tty: tty})
		}()
		eventually(t, "exec process to start", func() bool { return len(cmdlinePids("sleep\x004245")) > 0 })
		cancel()
		<-done
		eventually(t, fmt.Sprintf("exec process (%s, tty=%v) to go with its client", c.proto, tty), func() bool { return len(cmdlinePids("sleep\x004245")) == 0 })
	}
	eventually(t, "daemon fds to return to their count", func() bool { return fdCount(t, e.d.Pid()) <= fdsBefore })
}

// forwardPorts runs a client-go port-forward to the session URL and
// returns the local ports, in the order of remote.
func forwardPorts(t *testing.T, rawURL string, remote ...int) []int {
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
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, ports, stop, ready, io.Discard, os.Stderr)
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

// waitServing waits until the container answers HTTP on its loopback.
func (e *ctrEnv) waitServing(t *testing.T, id string, port int) {
	t.Helper()
	eventually(t, fmt.Sprintf("httpd on port %d", port), func() bool {
		resp, err := e.d.Runtime.ExecSync(framework.Ctx(t), &runtime.ExecSyncRequest{ContainerId: id,
			Cmd: []string{"wget", "-q", "-O", "/dev/null", fmt.Sprintf("http://127.0.0.1:%d/index.html", port)}, Timeout: 5})
		return err == nil && resp.ExitCode == 0
	})
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The [stream] section sets where session URLs point.
func TestStreamConfiguredPort(t *testing.T) {
	framework.Require(t)
	port := freePort(t)
	e := newCtrEnv(t, framework.WithConfig(fmt.Sprintf("[stream]\naddress = \"127.0.0.1\"\nport = %d\nidle_timeout = \"1m\"\n", port)))
	id := e.run(t, e.config("port", "sleep 3600"))
	u := e.execURL(t, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"echo", "hi"}, Stdout: true})
	if !strings.HasPrefix(u, fmt.Sprintf("http://127.0.0.1:%d/exec/", port)) {
		t.Fatalf("url %q does not use the configured port %d", u, port)
	}
	var out bytes.Buffer
	if err := streamProtocols["spdy"](t, u).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{Stdout: &out}); err != nil || out.String() != "hi\n" {
		t.Fatalf("exec: %q, %v", out.String(), err)
	}
}

// notifyWriter collects output and closes seen once it contains want.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const streamPod = `
apiVersion: v1
kind: Pod
metadata: {name: stream}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: $NODE}
  containers:
  - name: httpd
    image: $IMAGE
    imagePullPolicy: Never
    command: [httpd, -f, -p, "8080", -h, /www]
  - name: counter
    image: $IMAGE
    imagePullPolicy: Never
    command: [sh, -c, "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.5; done"]
  - name: echo
    image: $IMAGE
    imagePullPolicy: Never
    stdin: true
    command: [sh, -c, "while read l; do echo got $l; done"]
`

// kubectl's streaming commands against one pod (on the worker: the API
// server reaches its kubelet, which proxies to criserver's stream server):
// exec with and without stdin and with a terminal, attach, logs -f,
// port-forward and cp.
func TestStreaming(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	ns := c.namespace(t)
	c.apply(t, ns, manifest(streamPod, "NODE", c.Nodes[1]))
	c.wait(t, ns, "condition=Ready", "pod/stream", 2*time.Minute)

	t.Run("Exec", func(t *testing.T) {
		out, err := c.execErr(ns, "stream", "httpd", "sh", "-c", "echo out; echo err >&2; exit 3")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Errorf("exit: %v, want kubectl's exit code 3", err)
		}
		if out != "out\n" {
			t.Errorf("stdout %q", out)
		}
		if got := c.exec(t, ns, "stream", "httpd", "cat", "/www/index.html"); got != indexPage {
			t.Errorf("cat: %q", got)
		}
	})
	t.Run("ExecStdin", func(t *testing.T) {
		args := []string{"--kubeconfig", c.Kubeconfig, "exec", "-i", "-n", ns, "stream", "-c", "httpd", "--", "sh", "-c", "cat; echo done"}
		out, err := c.run(context.Background(), []byte("one\ntwo\n"), c.Kubectl, args...)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != "one\ntwo\ndone\n" {
			t.Errorf("exec -i echoed %q", out)
		}
	})
	t.Run("ExecTTY", func(t *testing.T) {
		// script(1) gives kubectl a terminal, as a user's shell would.
		cmd := fmt.Sprintf("%s --kubeconfig %s exec -it -n %s stream -c httpd -- sh -c 'tty; test -t 0 && echo stdin is a terminal'", c.Kubectl, c.Kubeconfig, ns)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// script's input stays open until the output is in: at its end
		// script types an end-of-file character, which the remote terminal
		// would echo (as ^@). Lines come without the terminal's \r.
		stdin, keep, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer keep.Close()
		run := exec.CommandContext(ctx, "script", "-q", "-e", "-c", cmd, "/dev/null")
		run.Stdin = stdin
		lines := startLines(t, run)
		stdin.Close()
		if err := lines.wait(func(l string) bool { return l == "stdin is a terminal" }, 30*time.Second); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if out := lines.out.String(); !regexp.MustCompile(`^/dev/pts/\d+\nstdin is a terminal\n$`).MatchString(out) {
			t.Errorf("exec -it printed %q, want a pts, and stdin a terminal", out)
		}
	})
	t.Run("Attach", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := c.kubectlCmd(ctx, "attach", "-i", "-n", ns, "stream", "-c", "echo")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		lines := startLines(t, cmd)
		// attach may connect after a first line is written: send until one
		// comes back.
		retry(t, 30*time.Second, "an echo through attach", func() error {
			if _, err := io.WriteString(stdin, "ping\n"); err != nil {
				return err
			}
			return lines.wait(func(l string) bool { return l == "got ping" }, 2*time.Second)
		})
	})
	t.Run("LogsFollow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		lines := startLines(t, c.kubectlCmd(ctx, "logs", "-f", "-n", ns, "stream", "-c", "counter"))
		if err := lines.wait(func(l string) bool { return l == "line 0" }, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		// Lines written after logs -f started come too.
		start := time.Now()
		var last string
		err := lines.wait(func(l string) bool { last = l; return time.Since(start) > 3*time.Second }, 30*time.Second)
		if err != nil {
			t.Fatalf("logs -f stopped following after %q: %v", last, err)
		}
	})
	t.Run("PortForward", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		lines := startLines(t, c.kubectlCmd(ctx, "port-forward", "-n", ns, "pod/stream", "--address", "127.0.0.1", ":8080"))
		forwarding := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> 8080$`)
		var port string
		err := lines.wait(func(l string) bool {
			if m := forwarding.FindStringSubmatch(l); m != nil {
				port = m[1]
			}
			return port != ""
		}, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 { // each request is a new stream
			if err := expect(indexPage)(httpGet("http://127.0.0.1:" + port + "/index.html")); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("Copy", func(t *testing.T) {
		dir := t.TempDir()
		content := randomText(t)
		local := filepath.Join(dir, "in")
		if err := os.WriteFile(local, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		c.kubectl(t, "cp", local, ns+"/stream:/tmp/in", "-c", "httpd")
		if got := c.exec(t, ns, "stream", "httpd", "cat", "/tmp/in"); got != content {
			t.Fatalf("copied in: %q, want %q", got, content)
		}
		c.exec(t, ns, "stream", "httpd", "sh", "-c", "rev /tmp/in > /tmp/out")
		back := filepath.Join(dir, "out")
		c.kubectl(t, "cp", ns+"/stream:/tmp/out", back, "-c", "httpd")
		got, err := os.ReadFile(back)
		if err != nil {
			t.Fatal(err)
		}
		if want := reverseLines(content); string(got) != want {
			t.Errorf("copied out: %q, want %q", got, want)
		}
	})
}

func randomText(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "first " + hex.EncodeToString(b) + "\nsecond line\n"
}

// reverseLines reverses each line of s, as rev(1) does.
func reverseLines(s string) string {
	var out strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		body := strings.TrimSuffix(l, "\n")
		r := []rune(body)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		out.WriteString(string(r) + l[len(body):])
	}
	return out.String()
}

// lineStream is the output (stdout and stderr) of a running command, line
// by line.
type lineStream struct {
	lines chan string
	out   *bytes.Buffer
}

// startLines starts cmd; t's cleanup kills it.
func startLines(t *testing.T, cmd *exec.Cmd) *lineStream {
	t.Helper()
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &lineStream{lines: make(chan string, 1024), out: &bytes.Buffer{}}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	go func() { _ = cmd.Wait(); w.Close() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return s
}

// wait reads lines until one matches, the output ends or within passes.
func (s *lineStream) wait(match func(string) bool, within time.Duration) error {
	timeout := time.After(within)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return fmt.Errorf("the command ended; it printed:\n%s", s.out)
			}
			s.out.WriteString(l + "\n")
			if match(l) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no matching line within %s; it printed:\n%s", within, s.out)
		}
	}
}

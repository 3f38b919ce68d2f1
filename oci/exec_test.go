package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// startTest creates and starts a long-running container for exec tests.
func startTest(t *testing.T, r *Runtime, mutate func(*SpecInput)) string {
	t.Helper()
	id, _, _ := createTest(t, r, "sleep 3600", mutate)
	if err := r.Start(context.Background(), "", id); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestExec(t *testing.T) {
	r := testRuntime(t)
	id := startTest(t, r, nil)
	fdsBefore := openFds(t)

	tests := []struct {
		name       string
		cmd        []string
		stdin      string
		wantOut    string
		wantErr    string
		wantCode   int
		withStdin  bool
		withStderr bool
	}{
		{name: "stdin to stdout", cmd: []string{"cat"}, stdin: "hello\n", withStdin: true, wantOut: "hello\n"},
		{name: "stderr", cmd: []string{"sh", "-c", "echo out; echo err >&2"}, withStderr: true, wantOut: "out\n", wantErr: "err\n"},
		{name: "exit code", cmd: []string{"sh", "-c", "exit 3"}, wantCode: 3},
		{name: "killed by signal", cmd: []string{"sh", "-c", "kill -9 $$"}, wantCode: 137},
		{name: "container env", cmd: []string{"sh", "-c", "echo $FROM_IMAGE"}, wantOut: "1\n"},
		{name: "background child keeps stdout", cmd: []string{"sh", "-c", "/bin/busybox sleep 1 & echo done"}, wantOut: "done\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			opts := ExecOptions{Cmd: tt.cmd, Stdout: &stdout}
			if tt.withStdin {
				opts.Stdin = strings.NewReader(tt.stdin)
			}
			if tt.withStderr {
				opts.Stderr = &stderr
			}
			code, err := r.Exec(context.Background(), "", id, opts)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || stdout.String() != tt.wantOut || stderr.String() != tt.wantErr {
				t.Fatalf("code %d stdout %q stderr %q; want %d %q %q", code, stdout.String(), stderr.String(), tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
	if after := openFds(t); after > fdsBefore {
		t.Errorf("open fds grew from %d to %d", fdsBefore, after)
	}
}

func TestExecErrors(t *testing.T) {
	r := testRuntime(t)
	id := startTest(t, r, nil)
	if _, err := r.Exec(context.Background(), "", "no-such-container", ExecOptions{Cmd: []string{"true"}}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("exec in unknown container: %v, want ErrNotRunning", err)
	}
	code, err := r.Exec(context.Background(), "", id, ExecOptions{Cmd: []string{"/no/such/binary"}})
	if err == nil {
		t.Errorf("exec of a missing binary: code %d, no error", code)
	}
}

func TestExecCancelKillsProcess(t *testing.T) {
	r := testRuntime(t)
	id := startTest(t, r, nil)
	goroutines, fds := goruntime.NumGoroutine(), openFds(t)
	for _, tty := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		// A client that sends no stdin until its session is closed.
		stdinR, stdinW := io.Pipe()
		_, err := r.Exec(ctx, "", id, ExecOptions{Cmd: []string{"/bin/busybox", "sleep", "4242"}, TTY: tty, Stdin: stdinR, Stdout: io.Discard})
		cancel()
		stdinW.Close()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("tty=%v: err %v, want deadline exceeded", tty, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("tty=%v: exec returned %v after cancel", tty, d)
		}
		if pids := processesWithCmdline("/bin/busybox\x00sleep\x004242"); len(pids) > 0 {
			t.Errorf("tty=%v: exec'd process still running: %v", tty, pids)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for goruntime.NumGoroutine() > goroutines || openFds(t) > fds {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d -> %d, fds %d -> %d", goroutines, goruntime.NumGoroutine(), fds, openFds(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestExecTTY(t *testing.T) {
	for _, handler := range []string{HandlerRunc, HandlerCrun} {
		t.Run(handler, func(t *testing.T) { testExecTTY(t, testRuntimeWith(t, handler)) })
	}
}

func testExecTTY(t *testing.T, r *Runtime) {
	id := startTest(t, r, nil)
	resize := make(chan remotecommand.TerminalSize, 2)
	resize <- remotecommand.TerminalSize{Width: 70, Height: 20}
	go func() {
		time.Sleep(700 * time.Millisecond)
		resize <- remotecommand.TerminalSize{Width: 100, Height: 30}
	}()
	var out bytes.Buffer
	code, err := r.Exec(context.Background(), "", id, ExecOptions{
		// crun 1.8 hands over the terminal as the process starts, so the
		// first size may land a moment after it; runc starts it with it.
		Cmd: []string{"sh", "-c", `for i in $(busybox seq 100); do [ "$(busybox stty size 2>/dev/null)" = "20 70" ] && break; busybox sleep 0.02; done; ` +
			"busybox stty size; busybox sleep 1.5; busybox stty size; test -t 0"},
		TTY:    true,
		Stdout: &out,
		Resize: resize,
	})
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v output %q", code, err, out.String())
	}
	if got := strings.ReplaceAll(out.String(), "\r", ""); got != "20 70\n30 100\n" {
		t.Fatalf("stty size printed %q", got)
	}
	// Typed input is echoed by the terminal and read by the process.
	out.Reset()
	code, err = r.Exec(context.Background(), "", id, ExecOptions{
		Cmd: []string{"sh", "-c", "read line; echo got:$line; exit 4"}, TTY: true,
		Stdin: strings.NewReader("abc\n"), Stdout: &out,
	})
	if err != nil || code != 4 || !strings.Contains(out.String(), "got:abc") {
		t.Fatalf("code %d err %v output %q", code, err, out.String())
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// processesWithCmdline lists host pids whose NUL-separated command line
// starts with prefix.
func processesWithCmdline(prefix string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.HasPrefix(string(b), prefix) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

func TestRemoveStaleExecDirs(t *testing.T) {
	state := t.TempDir()
	r := &Runtime{stateDir: state}
	prefix, err := r.execFiles()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(prefix + processSuffix); err != nil {
		t.Fatalf("exec process file: %v", err)
	}
	if err := os.WriteFile(prefix+".pid", []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveStaleExecDirs(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(prefix)); !os.IsNotExist(err) {
		t.Fatalf("stale exec files still there: %v", err)
	}
}

// One exec's files share a prefix in the exec directory, with no directory
// of their own, and all go when the exec ends.
func TestExecFilesRemoved(t *testing.T) {
	r := &Runtime{stateDir: t.TempDir()}
	prefix, err := r.execFiles()
	if err != nil {
		t.Fatal(err)
	}
	x := &execution{prefix: prefix}
	if filepath.Dir(x.processFile()) != filepath.Join(r.stateDir, "exec") {
		t.Errorf("process file %s is not in the exec directory", x.processFile())
	}
	for _, p := range []string{x.pidFile(), x.consoleSocket()} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	other, err := r.execFiles()
	if err != nil || other == prefix {
		t.Fatalf("second exec's prefix %q (%v) is not its own", other, err)
	}
	x.remove()
	entries, _ := os.ReadDir(filepath.Join(r.stateDir, "exec"))
	if len(entries) != 1 || entries[0].Name() != filepath.Base(other)+processSuffix {
		t.Errorf("after the exec ended the exec directory holds %v, want only the other exec's process file", entries)
	}
}

package oci

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReleaseExecFifo plays runc's init process with a shell: it opens the
// fifo for writing (blocking until we read), writes, and goes on.
func TestReleaseExecFifo(t *testing.T) {
	tests := []struct {
		name    string
		script  string // $1 is the fifo
		timeout time.Duration
		wantErr string // empty: success
	}{
		{name: "writes then execs", script: `exec 3>"$1"; printf 0 >&3; exec sleep 0.2`},
		{name: "writes then keeps the fifo open a while", script: `exec 3>"$1"; printf 0 >&3; sleep 0.2; exec 3>&-; sleep 1`},
		{name: "dies before opening the fifo", script: `exit 1`, wantErr: "exited before start"},
		{name: "opens and dies without writing", script: `exec 3>"$1"; exit 1`, wantErr: "exited before start"},
		{name: "never opens, caller gives up", script: `sleep 30`, timeout: 200 * time.Millisecond, wantErr: context.DeadlineExceeded.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), execFifo)
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("/bin/sh", "-c", tc.script, "sh", fifo)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			// Reap the child as runc's parent (conmon) would, so that
			// it does not linger as a zombie that counts as alive.
			go func() { _ = cmd.Wait() }()
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			done := make(chan error, 1)
			go func() { done <- releaseExecFifo(ctx, fifo, cmd.Process.Pid) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("releaseExecFifo hung")
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("releaseExecFifo: %v", err)
				}
				if _, err := os.Stat(fifo); !os.IsNotExist(err) {
					t.Errorf("fifo still there after start (stat: %v)", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("releaseExecFifo = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestReleaseExecFifoMissing(t *testing.T) {
	err := releaseExecFifo(context.Background(), filepath.Join(t.TempDir(), execFifo), os.Getpid())
	if !errors.Is(err, errNoExecFifo) {
		t.Fatalf("releaseExecFifo without a fifo = %v, want errNoExecFifo", err)
	}
}

// TestRuntimeStart checks the fifo paths against runc and crun
// themselves: the runtime must see the container as running afterwards,
// and a second start must fail.
func TestRuntimeStart(t *testing.T) {
	for _, handler := range []string{HandlerRunc, HandlerCrun} {
		t.Run(handler, func(t *testing.T) { testRuntimeStart(t, testRuntimeWith(t, handler)) })
	}
}

func testRuntimeStart(t *testing.T, r *Runtime) {
	ctx := context.Background()
	id, logPath, _ := createTest(t, r, `echo started; sleep 30`, nil)
	h, _ := r.handler("")
	fifo := filepath.Join(h.RuntimeRoot, id, execFifo)
	if _, err := os.Stat(fifo); err != nil {
		t.Fatalf("no exec fifo after create: %v", err)
	}
	if err := r.Start(ctx, "", id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st, err := r.Status(ctx, "", id); err != nil || st != "running" {
		t.Fatalf("runtime state after Start = %q, %v; want running", st, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "stdout F started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("program did not run after Start; log: %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Start(ctx, "", id); err == nil {
		t.Fatal("second Start succeeded")
	}
}

// TestRuntimeStartDeadInit: an init process killed between create and
// start makes Start fail at once instead of hanging.
func TestRuntimeStartDeadInit(t *testing.T) {
	for _, handler := range []string{HandlerRunc, HandlerCrun} {
		t.Run(handler, func(t *testing.T) {
			r := testRuntimeWith(t, handler)
			id, _, _ := createTest(t, r, `sleep 30`, nil)
			pid, err := readPid(filepath.Join(r.BundleDir(id), "pidfile"))
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Kill(pid, unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// Dead, not dying: a process on its way out still holds the fifo.
			for deadline := time.Now().Add(5 * time.Second); alive(pid); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("init %d still alive 5s after SIGKILL", pid)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := r.Start(ctx, "", id); err == nil {
				t.Fatal("Start of a container whose init was killed succeeded")
			} else if ctx.Err() != nil {
				t.Fatalf("Start hung until the deadline: %v", err)
			}
		})
	}
}

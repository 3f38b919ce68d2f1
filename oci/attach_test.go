package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// createAttachable creates and starts a container whose stdio conmon
// holds open for attach.
func createAttachable(t *testing.T, r *Runtime, script string, tty, stdinOnce bool) string {
	t.Helper()
	in, id := runInput(t)
	in.Config.Command = []string{"/bin/sh", "-c", script}
	in.Config.Tty, in.Config.Stdin, in.Config.StdinOnce = tty, true, stdinOnce
	res, err := GenerateSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = r.Create(ctx, CreateOptions{ID: id, Spec: res.Spec, LogPath: filepath.Join(t.TempDir(), "0.log"),
		Terminal: tty, Stdin: true, StdinOnce: stdinOnce})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Delete(context.Background(), "", id) })
	if err := r.Start(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	return id
}

// syncBuffer is written by the attach and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAttachStreamsAndStdinOnce(t *testing.T) {
	r := testRuntime(t)
	// stdin_once: the first client's end of input is the container's.
	id := createAttachable(t, r, `while read l; do echo out:$l; echo err:$l >&2; done; echo eof; /bin/busybox sleep 1`, false, true)
	stdinR, stdinW := io.Pipe()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- r.Attach(context.Background(), id, AttachOptions{Stdin: stdinR, Stdout: &stdout, Stderr: &stderr})
	}()
	io.WriteString(stdinW, "one\n")
	waitFor(t, "output of one", func() bool {
		return stdout.String() == "out:one\n" && stderr.String() == "err:one\n"
	})
	stdinW.Close()
	waitFor(t, "eof", func() bool { return strings.HasSuffix(stdout.String(), "eof\n") })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("attach ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end when the container exited")
	}
}

func TestAttachDetachLeavesContainer(t *testing.T) {
	r := testRuntime(t)
	// Not stdin_once: a detaching client leaves stdin open for the next.
	id := createAttachable(t, r, `while read l; do echo got:$l; done; echo eof`, false, false)
	for _, word := range []string{"first", "second"} {
		ctx, cancel := context.WithCancel(context.Background())
		stdinR, stdinW := io.Pipe()
		var stdout syncBuffer
		done := make(chan error, 1)
		go func() { done <- r.Attach(ctx, id, AttachOptions{Stdin: stdinR, Stdout: &stdout}) }()
		io.WriteString(stdinW, word+"\n")
		waitFor(t, word, func() bool { return stdout.String() == "got:"+word+"\n" })
		stdinW.Close()
		time.Sleep(200 * time.Millisecond)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("detach: %v", err)
		}
		if strings.Contains(stdout.String(), "eof") {
			t.Fatal("container saw end of input after a detach without stdin_once")
		}
	}
}

func TestAttachTTYResize(t *testing.T) {
	r := testRuntime(t)
	id := createAttachable(t, r, `while read l; do /bin/busybox stty size; done`, true, false)
	resize := make(chan remotecommand.TerminalSize, 1)
	stdinR, stdinW := io.Pipe()
	var stdout syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Attach(ctx, id, AttachOptions{Stdin: stdinR, Stdout: &stdout, Resize: resize})
	resize <- remotecommand.TerminalSize{Width: 91, Height: 17}
	time.Sleep(300 * time.Millisecond)
	io.WriteString(stdinW, "\n")
	waitFor(t, "stty size", func() bool { return strings.Contains(stdout.String(), "17 91") })
}

func TestAttachNotRunning(t *testing.T) {
	r := testRuntime(t)
	if err := r.Attach(context.Background(), "no-such", AttachOptions{}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("attach to unknown container: %v", err)
	}
}

package cri

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/streaming"
)

func TestStreamRequestValidation(t *testing.T) {
	srv, err := streaming.NewServer(streaming.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Streaming: srv})
	if err := srv.Start(s.StreamRuntime()); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	running := testRecord("aaaa1111", "pod", runtime.ContainerState_CONTAINER_RUNNING, nil)
	running.Config.Stdin = true
	s.containers.index(running)
	s.containers.index(testRecord("bbbb2222", "pod", runtime.ContainerState_CONTAINER_EXITED, nil))
	s.containers.index(testRecord("cccc3333", "pod", runtime.ContainerState_CONTAINER_RUNNING, nil))
	ctx := context.Background()

	execTests := []struct {
		name string
		req  *runtime.ExecRequest
		want codes.Code
	}{
		{"running by prefix", &runtime.ExecRequest{ContainerId: "aaaa", Cmd: []string{"sh"}, Stdout: true}, codes.OK},
		{"unknown", &runtime.ExecRequest{ContainerId: "ffff", Cmd: []string{"sh"}, Stdout: true}, codes.NotFound},
		{"stopped", &runtime.ExecRequest{ContainerId: "bbbb2222", Cmd: []string{"sh"}, Stdout: true}, codes.FailedPrecondition},
		{"no command", &runtime.ExecRequest{ContainerId: "aaaa1111", Stdout: true}, codes.InvalidArgument},
		{"no stream", &runtime.ExecRequest{ContainerId: "aaaa1111", Cmd: []string{"sh"}}, codes.InvalidArgument},
		{"tty with stderr", &runtime.ExecRequest{ContainerId: "aaaa1111", Cmd: []string{"sh"}, Tty: true, Stderr: true}, codes.InvalidArgument},
	}
	for _, tt := range execTests {
		resp, err := s.Exec(ctx, tt.req)
		if got := status.Code(toStatus(err)); got != tt.want {
			t.Errorf("Exec %s: code %v (%v), want %v", tt.name, got, err, tt.want)
		}
		if err == nil && !strings.HasPrefix(resp.Url, srv.URL()+"exec/") {
			t.Errorf("Exec %s: url %q not under %q", tt.name, resp.Url, srv.URL())
		}
	}

	attachTests := []struct {
		name string
		req  *runtime.AttachRequest
		want codes.Code
	}{
		{"running", &runtime.AttachRequest{ContainerId: "aaaa1111", Stdin: true, Stdout: true}, codes.OK},
		{"stopped", &runtime.AttachRequest{ContainerId: "bbbb2222", Stdout: true}, codes.FailedPrecondition},
		{"unknown", &runtime.AttachRequest{ContainerId: "ffff", Stdout: true}, codes.NotFound},
		{"stdin without container stdin", &runtime.AttachRequest{ContainerId: "cccc3333", Stdin: true, Stdout: true}, codes.FailedPrecondition},
		{"tty mismatch", &runtime.AttachRequest{ContainerId: "aaaa1111", Tty: true, Stdout: true}, codes.InvalidArgument},
	}
	for _, tt := range attachTests {
		if _, err := s.Attach(ctx, tt.req); status.Code(toStatus(err)) != tt.want {
			t.Errorf("Attach %s: %v, want %v", tt.name, err, tt.want)
		}
	}

	syncTests := []struct {
		name string
		req  *runtime.ExecSyncRequest
		want codes.Code
	}{
		{"stopped", &runtime.ExecSyncRequest{ContainerId: "bbbb2222", Cmd: []string{"true"}}, codes.FailedPrecondition},
		{"unknown", &runtime.ExecSyncRequest{ContainerId: "ffff", Cmd: []string{"true"}}, codes.NotFound},
		{"no command", &runtime.ExecSyncRequest{ContainerId: "aaaa1111"}, codes.InvalidArgument},
		{"negative timeout", &runtime.ExecSyncRequest{ContainerId: "aaaa1111", Cmd: []string{"true"}, Timeout: -1}, codes.InvalidArgument},
	}
	for _, tt := range syncTests {
		if _, err := s.ExecSync(ctx, tt.req); status.Code(toStatus(err)) != tt.want {
			t.Errorf("ExecSync %s: %v, want %v", tt.name, err, tt.want)
		}
	}

	if _, err := s.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: "p", Port: []int32{70000}}); status.Code(toStatus(err)) != codes.InvalidArgument {
		t.Errorf("PortForward to port 70000: %v", err)
	}
	if _, err := s.PortForward(ctx, &runtime.PortForwardRequest{}); status.Code(toStatus(err)) != codes.InvalidArgument {
		t.Errorf("PortForward without pod: %v", err)
	}
}

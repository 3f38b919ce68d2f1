package main

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// TestReplayServer: the kubelet's client connects to a replay server and
// gets back exactly the reply it was given.
func TestReplayServer(t *testing.T) {
	want := &runtime.ListContainersResponse{Containers: []*runtime.Container{
		{Id: "c1", PodSandboxId: "p1", Metadata: &runtime.ContainerMetadata{Name: "a"}, Labels: map[string]string{"k": "v"}},
		{Id: "c2", PodSandboxId: "p1", State: runtime.ContainerState_CONTAINER_RUNNING, ImageRef: "sha256:abc"},
	}}
	reply, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "replay.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := newReplayServer(reply)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	ctx := context.Background()
	rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint("unix://" + sock).
		WithConnectionTimeout(10 * time.Second).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		t.Fatalf("the kubelet's client does not accept the replay server: %v", err)
	}
	defer rt.Close(ctx)
	for range 2 {
		got, err := rt.ListContainers(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&runtime.ListContainersResponse{Containers: got}, want) {
			t.Fatalf("ListContainers = %v, want %v", got, want.Containers)
		}
	}
}

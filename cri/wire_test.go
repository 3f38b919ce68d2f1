package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/reservation"
)

// serveTest serves s on a unix socket and returns a client of it.
func serveTest(t *testing.T, s *Service) runtime.RuntimeServiceClient {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := s.NewServer()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtime.NewRuntimeServiceClient(conn)
}

// TestListContainersWire checks that the cached wire form served over gRPC
// is what the typed ListContainers builds, for each filter, and that a
// state change is seen.
func TestListContainersWire(t *testing.T) {
	s := New(Options{})
	running := testRecord("aaa111", "pod1", runtime.ContainerState_CONTAINER_RUNNING, map[string]string{"app": "web"})
	running.Config.Annotations = map[string]string{"io.kubernetes.container.hash": "1234"}
	s.containers.index(running)
	s.containers.index(testRecord("bbb222", "pod2", runtime.ContainerState_CONTAINER_CREATED, map[string]string{"app": "db"}))
	s.containers.index(testRecord("ccc333", "pod1", runtime.ContainerState_CONTAINER_EXITED, nil))
	cl := serveTest(t, s)
	ctx := context.Background()

	filters := []*runtime.ContainerFilter{
		nil,
		{},
		{Id: "bbb"},
		{PodSandboxId: "pod1"},
		{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}},
		{LabelSelector: map[string]string{"app": "db"}},
		{Id: "nothing-matches"},
	}
	check := func(t *testing.T) {
		t.Helper()
		for _, f := range filters {
			req := &runtime.ListContainersRequest{Filter: f}
			want, err := s.ListContainers(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cl.ListContainers(ctx, req)
			if err != nil {
				t.Fatalf("filter %v: %v", f, err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("filter %v:\n got %v\nwant %v", f, got, want)
			}
		}
	}
	check(t)
	// The encodings are cached now; a state change must show.
	running.setStatus(containerStatus{State: runtime.ContainerState_CONTAINER_EXITED})
	check(t)
	got, err := cl.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{Id: "aaa"}})
	if err != nil || len(got.Containers) != 1 || got.Containers[0].State != runtime.ContainerState_CONTAINER_EXITED {
		t.Fatalf("after exit: %v, %v", got, err)
	}
}

// TestStreamContainers checks the streamed list against ListContainers:
// every container once, in messages of at most streamBatch, and no
// message at all when nothing matches.
func TestStreamContainers(t *testing.T) {
	if f := (&runtime.StreamContainersResponse{}).ProtoReflect().Descriptor().Fields().ByName("containers").Number(); f != containersField {
		t.Fatalf("StreamContainersResponse.containers is field %d, ListContainersResponse's is %d", f, containersField)
	}
	s := New(Options{})
	const n = 2*streamBatch + 7
	for i := range n {
		pod := "pod-a"
		if i%3 == 0 {
			pod = "pod-b"
		}
		s.containers.index(testRecord(reservation.NewID(), pod, runtime.ContainerState_CONTAINER_RUNNING, map[string]string{"i": fmt.Sprint(i)}))
	}
	cl := serveTest(t, s)
	ctx := context.Background()
	for _, f := range []*runtime.ContainerFilter{nil, {PodSandboxId: "pod-b"}, {LabelSelector: map[string]string{"i": "5"}}, {Id: "no-such"}} {
		want, err := s.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		stream, err := cl.StreamContainers(ctx, &runtime.StreamContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var got []*runtime.Container
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("filter %v: Recv: %v", f, err)
			}
			if len(resp.Containers) == 0 || len(resp.Containers) > streamBatch {
				t.Errorf("filter %v: a message with %d containers", f, len(resp.Containers))
			}
			got = append(got, resp.Containers...)
		}
		if !proto.Equal(&runtime.ListContainersResponse{Containers: got}, want) {
			t.Errorf("filter %v: streamed %d containers, listed %d, or they differ", f, len(got), len(want.Containers))
		}
	}
}

// TestServerOtherMethods checks that the codec leaves other replies alone.
func TestServerOtherMethods(t *testing.T) {
	s := New(Options{})
	s.containers.index(testRecord("aaa111", "pod1", runtime.ContainerState_CONTAINER_EXITED, nil))
	cl := serveTest(t, s)
	resp, err := cl.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: "aaa111"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetId() != "aaa111" || resp.GetStatus().GetState() != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("ContainerStatus = %v", resp)
	}
}

// BenchmarkListContainersWire500 is ListContainers over 500 containers in
// the form the server sends.
func BenchmarkListContainersWire500(b *testing.B) {
	s := New(Options{})
	for range 500 {
		s.containers.index(testRecord(reservation.NewID(), "pod", runtime.ContainerState_CONTAINER_RUNNING, map[string]string{"i": "x"}))
	}
	b.ReportAllocs()
	for b.Loop() {
		w, err := s.listContainersWire(&runtime.ListContainersRequest{})
		if err != nil {
			b.Fatal(err)
		}
		w.buf.Free()
	}
}

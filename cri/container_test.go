package cri

import (
	"context"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/reservation"
)

func TestContainerLogPath(t *testing.T) {
	tests := []struct {
		dir, rel, want string
		code           codes.Code
	}{
		{"/var/log/pods/x", "c/0.log", "/var/log/pods/x/c/0.log", codes.OK},
		{"/var/log/pods/x", "./c/../d/1.log", "/var/log/pods/x/d/1.log", codes.OK},
		{"", "c/0.log", "", codes.OK},
		{"/var/log/pods/x", "", "", codes.OK},
		{"/var/log/pods/x", "../y/0.log", "", codes.InvalidArgument},
		{"/var/log/pods/x", "c/../../0.log", "", codes.InvalidArgument},
		{"/var/log/pods/x", "..", "", codes.InvalidArgument},
		{"/var/log/pods/x", "/etc/passwd", "", codes.InvalidArgument},
		{"relative", "c/0.log", "", codes.InvalidArgument},
	}
	for _, tt := range tests {
		got, err := containerLogPath(tt.dir, tt.rel)
		if status.Code(toStatus(err)) != tt.code || got != tt.want {
			t.Errorf("containerLogPath(%q, %q) = %q, %v; want %q, %v", tt.dir, tt.rel, got, err, tt.want, tt.code)
		}
	}
}

func testRecord(id, pod string, state runtime.ContainerState, labels map[string]string) *containerRecord {
	c := &containerRecord{
		ID: id, PodID: pod, CreatedAt: time.Now(), nameKey: pod + "/" + id + "/0",
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: id}, Labels: labels,
			Image: &runtime.ImageSpec{Image: "sha256:abc"}},
		Image: containerImage{Ref: "sha256:abc", ID: "sha256:abc", RepoTags: []string{"reg/busybox:1"}, RepoDigests: []string{"reg/busybox@sha256:def"}},
	}
	c.setStatus(containerStatus{State: state})
	return c
}

func TestMatchContainer(t *testing.T) {
	c := testRecord("abcdef", "pod1", runtime.ContainerState_CONTAINER_RUNNING, map[string]string{"app": "web", "tier": "fe"})
	running := &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}
	exited := &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_EXITED}
	tests := []struct {
		name string
		f    *runtime.ContainerFilter
		want bool
	}{
		{"nil", nil, true},
		{"id prefix", &runtime.ContainerFilter{Id: "abc"}, true},
		{"other id", &runtime.ContainerFilter{Id: "abd"}, false},
		{"pod", &runtime.ContainerFilter{PodSandboxId: "pod1"}, true},
		{"other pod", &runtime.ContainerFilter{PodSandboxId: "pod2"}, false},
		{"state", &runtime.ContainerFilter{State: running}, true},
		{"other state", &runtime.ContainerFilter{State: exited}, false},
		{"labels", &runtime.ContainerFilter{LabelSelector: map[string]string{"app": "web"}}, true},
		{"label value", &runtime.ContainerFilter{LabelSelector: map[string]string{"app": "db"}}, false},
		{"missing label", &runtime.ContainerFilter{LabelSelector: map[string]string{"zone": "a"}}, false},
	}
	for _, tt := range tests {
		if got := matchContainer(c, tt.f); got != tt.want {
			t.Errorf("%s: matchContainer = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestImageNames(t *testing.T) {
	c := testRecord("a", "p", runtime.ContainerState_CONTAINER_CREATED, nil)
	if got := c.imageSpec().GetImage(); got != "reg/busybox:1" {
		t.Errorf("by ID: image %q, want the first tag", got)
	}
	c.Image.Ref = "reg/busybox@sha256:def"
	if got := c.imageSpec().GetImage(); got != "reg/busybox@sha256:def" {
		t.Errorf("by digest: image %q, want the digest asked for", got)
	}
	if got := c.imageRef(); got != "reg/busybox@sha256:def" {
		t.Errorf("imageRef %q, want the repo digest", got)
	}
	c.Image.RepoDigests = nil
	if got := c.imageRef(); got != "sha256:abc" {
		t.Errorf("imageRef without digests %q, want the ID", got)
	}
}

func TestSignalEnum(t *testing.T) {
	for sig, want := range map[syscall.Signal]runtime.Signal{
		syscall.SIGTERM: runtime.Signal_SIGNAL_SIGTERM,
		syscall.SIGKILL: runtime.Signal_SIGNAL_SIGKILL,
		syscall.SIGUSR1: runtime.Signal_SIGNAL_SIGUSR1,
		0:               runtime.Signal_SIGNAL_RUNTIME_DEFAULT,
	} {
		if got := signalEnum(sig); got != want {
			t.Errorf("signalEnum(%v) = %v, want %v", sig, got, want)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	c := testRecord("abc", "pod", runtime.ContainerState_CONTAINER_EXITED, map[string]string{"k": "v"})
	c.Config.LogPath = "c/0.log"
	c.User = oci.ResolvedUser{UID: 1, GID: 2, AdditionalGids: []uint32{3}}
	c.StopSignal = syscall.SIGINT
	c.setStatus(containerStatus{
		State: runtime.ContainerState_CONTAINER_EXITED, StartedAt: time.Unix(10, 0), FinishedAt: time.Unix(20, 0),
		ExitCode: 137, Reason: reasonOOMKilled, Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 20},
	})
	f, err := c.toFile(c.Status())
	if err != nil {
		t.Fatal(err)
	}
	back, err := recordFromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	got, want := back.toStatus(), c.toStatus()
	if got.String() != want.String() {
		t.Errorf("round trip changed the status:\n got %v\nwant %v", got, want)
	}
	if back.nameKey != "pod/abc/0" {
		t.Errorf("name key %q", back.nameKey)
	}
}

// BenchmarkListContainers500 measures ListContainers over 500 containers
// (the target: p99 under 5 ms).
func BenchmarkListContainers500(b *testing.B) {
	s := New(Options{})
	for i := 0; i < 500; i++ {
		s.containers.index(testRecord(reservation.NewID(), "pod", runtime.ContainerState_CONTAINER_RUNNING, map[string]string{"i": "x"}))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := s.ListContainers(context.Background(), &runtime.ListContainersRequest{})
		if err != nil || len(resp.Containers) != 500 {
			b.Fatal(err)
		}
	}
}

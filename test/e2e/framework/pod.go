package framework

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UID returns a random pod UID.
func UID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PodConfig is a pod as the kubelet would send it: unique metadata, a log
// directory of its own under d.LogDir, the pod network.
func (d *Daemon) PodConfig(t testing.TB, name string) *runtime.PodSandboxConfig {
	t.Helper()
	uid := UID()
	logDir := filepath.Join(d.LogDir, "e2e_"+name+"_"+uid)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "e2e", Uid: uid},
		Hostname:     name,
		LogDirectory: logDir,
		Labels:       map[string]string{"e2e": "true", "name": name},
		Linux: &runtime.LinuxPodSandboxConfig{
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{},
			},
		},
	}
}

// PullBusybox pushes BusyboxImage to reg as busybox:latest, pulls it into
// d, and returns the reference.
func (d *Daemon) PullBusybox(t testing.TB, reg *Registry) string {
	t.Helper()
	ref := reg.Ref("busybox", "latest")
	reg.Push(t, "busybox", "latest", BusyboxImage(t))
	if _, err := d.Image.PullImage(Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return ref
}

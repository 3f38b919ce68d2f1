package framework

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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

// ContainerConfig is a container as the kubelet would send it: sh running
// script in image, logging to <name>/0.log in the pod's log directory.
func ContainerConfig(image, name, script string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: image},
		Command:  []string{"sh", "-c", script},
		LogPath:  name + "/0.log",
		Labels:   map[string]string{"name": name},
		Linux:    &runtime.LinuxContainerConfig{},
	}
}

// CreateStart creates cfg's container in pod and starts it, as the
// kubelet does. The ID comes back also when only the start failed, so the
// caller can remove what was created.
func (d *Daemon) CreateStart(ctx context.Context, pod string, podCfg *runtime.PodSandboxConfig, cfg *runtime.ContainerConfig) (string, error) {
	resp, err := d.Runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		return "", fmt.Errorf("CreateContainer %s: %w", cfg.GetMetadata().GetName(), err)
	}
	if _, err := d.Runtime.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		return resp.ContainerId, fmt.Errorf("StartContainer %s: %w", cfg.GetMetadata().GetName(), err)
	}
	return resp.ContainerId, nil
}

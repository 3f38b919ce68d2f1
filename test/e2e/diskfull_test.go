package e2e

import (
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// onTmpfs puts the daemon's root on a tmpfs of size bytes.
func onTmpfs(t *testing.T, size string) framework.Option {
	return func(d *framework.Daemon) error {
		if err := os.MkdirAll(d.Root, 0o700); err != nil {
			return err
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", d.Root).CombinedOutput(); err != nil {
			return &os.PathError{Op: "mount tmpfs: " + strings.TrimSpace(string(out)), Path: d.Root, Err: err}
		}
		// The daemon's cleanup unmounts it too; this covers a failed start.
		t.Cleanup(func() { _ = syscall.Unmount(d.Root, syscall.MNT_DETACH) })
		return nil
	}
}

// incompressible is n random bytes: gzip cannot shrink the layer.
func incompressible(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDiskFullDuringPull pulls an image bigger than the free space of the
// daemon's root: the pull fails with ResourceExhausted naming the lack of
// space and leaves the store as it was; once there is room, it succeeds.
func TestDiskFullDuringPull(t *testing.T) {
	d := framework.StartDaemon(t, onTmpfs(t, "16m"))
	reg := framework.StartRegistry(t)
	d.PullBusybox(t, reg)

	big := framework.BusyboxImage(t)
	big.AddLayer(framework.File("big.bin", incompressible(t, 24<<20), 0o644))
	reg.Push(t, "big", "latest", big)
	bigRef := reg.Ref("big", "latest")
	small := framework.BusyboxImage(t)
	small.AddLayer(framework.File("small.txt", "small", 0o644))
	reg.Push(t, "small", "latest", small)
	smallRef := reg.Ref("small", "latest")

	layersBefore := layerStoreEntries(t, d)
	usedBefore := imageFsUsed(t, d)

	_, err := d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: bigRef}})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("pull onto a full disk = %v, want ResourceExhausted saying there is no space", err)
	}
	t.Logf("pull onto a full disk: %v", err)
	if got := layerStoreEntries(t, d); strings.Join(got, ",") != strings.Join(layersBefore, ",") {
		t.Errorf("overlay2 after the failed pull = %v, want %v", got, layersBefore)
	}
	if st, err := d.Image.ImageStatus(framework.Ctx(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: bigRef}}); err != nil || st.Image != nil {
		t.Errorf("ImageStatus of the failed image = %v, %v; want no image", st, err)
	}
	if used := imageFsUsed(t, d); used != usedBefore {
		t.Errorf("ImageFsInfo used bytes after the failed pull = %d, want %d", used, usedBefore)
	}

	// What fits still pulls: the failure left room behind.
	if _, err := d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: smallRef}}); err != nil {
		t.Fatalf("pull of a small image after the failure: %v", err)
	}

	if out, err := exec.Command("mount", "-o", "remount,size=96m", d.Root).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v: %s", err, out)
	}
	resp, err := d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: bigRef}})
	if err != nil {
		t.Fatalf("pull once there is room: %v", err)
	}
	st, err := d.Image.ImageStatus(framework.Ctx(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: bigRef}})
	if err != nil || st.Image == nil || st.Image.Id != resp.ImageRef || st.Image.Size < 24<<20 {
		t.Errorf("ImageStatus after the pull = %v, %v", st, err)
	}
	if used := imageFsUsed(t, d); used < usedBefore+24<<20 {
		t.Errorf("ImageFsInfo used bytes with the big image = %d, want at least %d", used, usedBefore+24<<20)
	}
	for _, l := range layerStoreEntries(t, d) {
		if strings.HasPrefix(l, "tmp-") {
			t.Errorf("temp layer dir %s left after the pull", l)
		}
	}
}

// fill writes a file under dir until the filesystem is full, and returns
// its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "fill")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return path
		}
	}
}

// TestDiskFullCreateContainer creates a container while the root is full:
// ResourceExhausted, no record, no writable layer left; once there is
// room again the same container is created and runs.
func TestDiskFullCreateContainer(t *testing.T) {
	d := framework.StartDaemon(t, onTmpfs(t, "16m"))
	image := d.PullBusybox(t, framework.StartRegistry(t))
	cfg := d.PodConfig(t, "full")
	pod := runPod(t, d, cfg)
	t.Cleanup(func() { stopRemovePod(t, d, pod) })
	layers := layerStoreEntries(t, d)

	filler := fill(t, d.Root)
	// Before the pod's removal: stopping a pod writes its record.
	t.Cleanup(func() { os.Remove(filler) })
	req := &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "full"},
		Image:    &runtime.ImageSpec{Image: image},
		Command:  []string{"sleep", "3600"},
		Linux:    &runtime.LinuxContainerConfig{},
	}}
	_, err := d.Runtime.CreateContainer(framework.Ctx(t), req)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("CreateContainer on a full disk = %v, want ResourceExhausted saying there is no space", err)
	}
	t.Logf("CreateContainer on a full disk: %v", err)
	if got := layerStoreEntries(t, d); strings.Join(got, ",") != strings.Join(layers, ",") {
		t.Errorf("overlay2 after the failed create = %v, want %v", got, layers)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root, "containers")); len(ents) != 0 {
		t.Errorf("the failed create left %d container records", len(ents))
	}
	if resp, err := d.Runtime.ListContainers(framework.Ctx(t), &runtime.ListContainersRequest{}); err != nil || len(resp.Containers) != 0 {
		t.Errorf("ListContainers after the failed create = %v, %v", resp, err)
	}
	if mounts, _ := framework.MountsUnder(filepath.Join(d.Root, "overlay2")); len(mounts) != 0 {
		t.Errorf("mounts left after the failed create: %v", mounts)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	resp, err := d.Runtime.CreateContainer(framework.Ctx(t), req)
	if err != nil {
		t.Fatalf("CreateContainer once there is room: %v", err)
	}
	if _, err := d.Runtime.StartContainer(framework.Ctx(t), &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
}

package imagestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestImageVolumes(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("base", "v1", testImage{layers: [][]byte{baseLayer(t)}})
	reg.push("two", "v1", testImage{layers: [][]byte{
		buildTar(t, dir("data"), file("data/a", "a"), file("data/gone", "g")),
		buildTar(t, dir("data"), file("data/.wh.gone", ""), file("data/b", "b")),
	}})
	root := t.TempDir()
	s := newTestStore(t, root)
	ctx := context.Background()
	base, err := s.Pull(ctx, reg.addr()+"/base:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	two, err := s.Pull(ctx, reg.addr()+"/two:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	// One layer (needs the empty bottom directory) and two layers.
	m, err := s.CreateRootfs(ctx, "c1", base.ID, RootfsOptions{VolumeImages: []string{base.ID, reg.addr() + "/two:v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Volumes) != 2 || m.VolumeImageIDs[0] != base.ID || m.VolumeImageIDs[1] != two.ID {
		t.Fatalf("volumes %v, image IDs %v", m.Volumes, m.VolumeImageIDs)
	}
	checkVolumes := func(m Mounted) {
		t.Helper()
		for name, want := range map[string]bool{
			filepath.Join(m.Volumes[0], "etc/passwd"): true,
			filepath.Join(m.Volumes[1], "data/a"):     true,
			filepath.Join(m.Volumes[1], "data/b"):     true,
			filepath.Join(m.Volumes[1], "data/gone"):  false,
		} {
			if _, err := os.Lstat(name); (err == nil) != want {
				t.Errorf("%s exists = %v, want %v", name, err == nil, want)
			}
		}
		for _, v := range m.Volumes {
			err := os.WriteFile(filepath.Join(v, "new"), nil, 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Errorf("write into volume %s: %v, want EROFS", v, err)
			}
		}
	}
	checkVolumes(m)

	// The image stays in use by the volume after its record is removed.
	twoLayers := s.images[two.ID].Layers
	if err := s.Remove(ctx, two.ID); err != nil {
		t.Fatal(err)
	}
	for _, l := range twoLayers {
		if s.layers[l] == nil {
			t.Errorf("layer %s of a volume's image was removed", l)
		}
	}

	// A restarted store mounts the volumes again.
	if err := s.unmountAll(s.rootfs["c1"]); err != nil {
		t.Fatal(err)
	}
	s2 := newTestStore(t, root)
	m2, err := s2.MountRootfs(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	checkVolumes(m2)

	if err := s2.RemoveRootfs(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	s2.WaitRemovals()
	if _, err := os.Stat(s2.rootfsPath("c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rootfs dir left: %v", err)
	}
	for _, l := range twoLayers {
		if s2.layers[l] != nil {
			t.Errorf("layer %s of the removed image left after its volume went", l)
		}
	}
}

func TestImageVolumeOfMissingImage(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("base", "v1", testImage{layers: [][]byte{baseLayer(t)}})
	s := newTestStore(t, t.TempDir())
	ctx := context.Background()
	base, err := s.Pull(ctx, reg.addr()+"/base:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateRootfs(ctx, "c1", base.ID, RootfsOptions{VolumeImages: []string{"sha256:" + base.ID[len("sha256:"):len("sha256:")+10] + "ff"}})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("volume of a missing image: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(s.rootfsPath("c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rootfs dir left after a refused create: %v", err)
	}
}

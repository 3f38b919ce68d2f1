package imagestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestRootfsMergedViewAndLifecycle(t *testing.T) {
	reg := newFakeRegistry(t)
	lower := buildTar(t, dir("etc"), file("etc/keep", "k"), file("etc/gone", "g"),
		dir("opq"), file("opq/old", "o"), dir("d"), file("d/x", "x"))
	upper := buildTar(t, file("etc/.wh.gone", ""), dir("opq"), file("opq/.wh..wh..opq", ""), file("opq/new", "n"),
		file(".wh.d", ""))
	reg.push("w", "v1", testImage{layers: [][]byte{lower, upper}, compression: []string{"gzip", "gzip"}})
	s := newTestStore(t, t.TempDir())
	ctx := context.Background()
	img, err := s.Pull(ctx, reg.addr()+"/w:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	const cid = "c1"
	m, err := s.CreateRootfs(ctx, cid, img.ID, RootfsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	merged := m.Path
	t.Cleanup(func() { s.RemoveRootfs(ctx, cid) })
	exists := map[string]bool{"etc/keep": true, "etc/gone": false, "opq/new": true, "opq/old": false, "d": false}
	for name, want := range exists {
		_, err := os.Lstat(filepath.Join(merged, name))
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v (%v)", name, got, want, err)
		}
	}
	if again, err := s.MountRootfs(ctx, cid); err != nil || again.Path != merged {
		t.Errorf("MountRootfs on a mounted rootfs: %q %v", again, err)
	}
	if err := os.WriteFile(filepath.Join(merged, "written"), make([]byte, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	b, n, err := s.RootfsUsage(cid, 0)
	if err != nil || b < 10000 || n < 1 {
		t.Errorf("RootfsUsage = %d, %d, %v", b, n, err)
	}
	// A measurement younger than maxAge is reused; maxAge 0 walks again.
	if err := os.WriteFile(filepath.Join(merged, "more"), make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	if again, _, err := s.RootfsUsage(cid, time.Hour); err != nil || again != b {
		t.Errorf("RootfsUsage within maxAge = %d, %v; want the last measurement %d", again, err, b)
	}
	if fresh, _, err := s.RootfsUsage(cid, 0); err != nil || fresh < b+5000 {
		t.Errorf("RootfsUsage with maxAge 0 = %d, %v; want at least %d", fresh, err, b+5000)
	}
	if u := s.ContainerFsUsage(); u.UsedBytes < 10000 {
		t.Errorf("ContainerFsUsage = %+v", u)
	}
	// MeasureRootfs walks now and leaves its figure for the cached views.
	if err := os.WriteFile(filepath.Join(merged, "third"), make([]byte, 7000), 0o644); err != nil {
		t.Fatal(err)
	}
	measured, err := s.MeasureRootfs(cid)
	if err != nil || uint64(measured.Bytes) < b+12000 {
		t.Errorf("MeasureRootfs = %+v, %v; want at least %d bytes", measured, err, b+12000)
	}
	if cached, _, ok := s.CachedRootfsUsage(cid); !ok || cached != measured {
		t.Errorf("CachedRootfsUsage = %+v, %v; want MeasureRootfs's %+v", cached, ok, measured)
	}
	if _, err := s.MeasureRootfs("no-such-container"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("MeasureRootfs of an unknown container: %v, want not exist", err)
	}
	if d := s.RootfsDir(); filepath.Dir(m.Path) != filepath.Join(d, cid) {
		t.Errorf("RootfsDir %s does not hold the rootfs %s", d, m.Path)
	}
	// The image goes, its layers stay for the container.
	if err := s.Remove(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	top := s.layerPath(chainIDs([]digest.Digest{digest.FromBytes(lower), digest.FromBytes(upper)})[1])
	if _, err := os.Stat(top); err != nil {
		t.Errorf("layer of a container removed with its image: %v", err)
	}
	if err := s.RemoveRootfs(ctx, cid); err != nil {
		t.Fatal(err)
	}
	// Gone from the store's namespace at once, from the disk and the mount
	// table once the trash has deleted it.
	for _, p := range []string{s.rootfsPath(cid), top} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after RemoveRootfs: %v", p, err)
		}
	}
	s.WaitRemovals()
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), s.layerDir+"/") {
		t.Errorf("an overlay under %s is still mounted after the trash drained", s.layerDir)
	}
	if left, _ := filepath.Glob(filepath.Join(s.layerDir, tmpPrefix+"*")); len(left) > 0 {
		t.Errorf("trash left after it drained: %v", left)
	}
	if err := s.RemoveRootfs(ctx, cid); err != nil {
		t.Errorf("second RemoveRootfs: %v", err)
	}
	if _, err := s.CreateRootfs(ctx, "c2", img.ID, RootfsOptions{}); err == nil {
		t.Errorf("CreateRootfs of a removed image succeeded")
	}
	for _, bad := range []string{"", "../x", "l", "tmp-x", "a/b"} {
		if _, err := s.CreateRootfs(ctx, bad, img.ID, RootfsOptions{}); err == nil {
			t.Errorf("CreateRootfs(%q) succeeded", bad)
		}
	}
}

func TestRootfsSurvivesRestart(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("w", "v1", testImage{layers: [][]byte{baseLayer(t)}})
	root := t.TempDir()
	s := newTestStore(t, root)
	ctx := context.Background()
	img, err := s.Pull(ctx, reg.addr()+"/w:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.CreateRootfs(ctx, "c1", img.ID, RootfsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	merged := m.Path
	if err := unmount(merged); err != nil {
		t.Fatal(err)
	}
	s2 := newTestStore(t, root)
	if _, err := s2.MountRootfs(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(merged, "etc/passwd")); err != nil {
		t.Errorf("remounted rootfs: %v", err)
	}
	if err := s2.Remove(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	if err := s2.RemoveRootfs(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if len(s2.layers) != 0 {
		t.Errorf("layers left: %d", len(s2.layers))
	}
}

func TestMountOptionsFitInAPage(t *testing.T) {
	s := newTestStore(t, t.TempDir())
	layers := make([]digest.Digest, 200)
	for i := range layers {
		layers[i] = digest.FromString(string(rune(i)))
	}
	r := &rootfs{ContainerID: "many", Layers: layers}
	if err := os.MkdirAll(filepath.Join(s.rootfsPath("many"), "merged"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := s.mount(r); err == nil || !strings.Contains(err.Error(), "exceed a page") {
		t.Errorf("200 layers: err = %v, want the page-limit error", err)
	}
	// 120 layers fit: short links keep each lowerdir entry ~30 bytes.
	if n := len(lowerFor(layers[:120])); n >= maxMountOptions-200 {
		t.Errorf("lowerdir for 120 layers is %d bytes", n)
	}
}

// TestRootfsTrashRemovedAtStart: a crash after RemoveRootfs moved a
// writable layer to the trash, still mounted, leaves it to the next start,
// which unmounts and deletes it.
func TestRootfsTrashRemovedAtStart(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("w", "v1", testImage{layers: [][]byte{baseLayer(t)}})
	root := t.TempDir()
	s := newTestStore(t, root)
	ctx := context.Background()
	img, err := s.Pull(ctx, reg.addr()+"/w:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRootfs(ctx, "c1", img.ID, RootfsOptions{}); err != nil {
		t.Fatal(err)
	}
	trashed := filepath.Join(s.layerDir, tmpPrefix+"del-c1-1")
	if err := os.Rename(s.rootfsPath("c1"), trashed); err != nil {
		t.Fatal(err)
	}
	if mounted, err := isMountpoint(filepath.Join(trashed, "merged")); err != nil || !mounted {
		t.Fatalf("the trashed layer is not mounted (%v): the test proves nothing", err)
	}
	s2 := newTestStore(t, root)
	if _, err := os.Stat(trashed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("trash left after a start: %v", err)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), s2.layerDir+"/") {
		t.Errorf("an overlay under %s is still mounted after a start", s2.layerDir)
	}
}

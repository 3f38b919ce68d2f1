package imagestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// duBytes runs du(1): the figure DiskUsage promises to equal.
func duBytes(t *testing.T, args ...string) int64 {
	t.Helper()
	out, err := exec.Command("du", append([]string{"-s", "-c", "-x", "-B1"}, args...)...).Output()
	if err != nil {
		t.Fatalf("du %v: %v", args, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	n, err := strconv.ParseInt(strings.Fields(lines[len(lines)-1])[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// snapshot lists every path under root with what a write would change.
func snapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d %d", p, info.Mode(), info.Size(), info.ModTime().UnixNano()))
		if d.IsDir() && d.Name() == "merged" {
			return filepath.SkipDir // the container's view, not the store
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestViewDiffAndDiskUsage(t *testing.T) {
	reg := newFakeRegistry(t)
	base := baseLayer(t)
	app := buildTar(t, dir("app"), file("app/run", "run"), file("app/conf", "c"), dir("app/data"), file("app/data/a", "a"))
	other := buildTar(t, dir("srv"), file("srv/big", strings.Repeat("x", 20000)))
	reg.push("app", "v1", testImage{layers: [][]byte{base, app}})
	reg.push("other", "v1", testImage{layers: [][]byte{base, other}})
	root := t.TempDir()
	s := newTestStore(t, root)
	ctx := context.Background()
	img, err := s.Pull(ctx, reg.addr()+"/app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(ctx, reg.addr()+"/other:v1", nil); err != nil {
		t.Fatal(err)
	}
	const cid = "0123456789abcdef"
	m, err := s.CreateRootfs(ctx, cid, img.ID, RootfsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	merged := m.Path
	t.Cleanup(func() { s.RemoveRootfs(ctx, cid) })
	in := func(p string) string { return filepath.Join(merged, p) }
	steps := []error{
		os.WriteFile(in("new"), []byte("n"), 0o644),
		os.WriteFile(in("etc/passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644),
		os.Remove(in("bin/sh")),         // from the base layer
		os.Remove(in("app/conf")),       // from the top layer
		os.RemoveAll(in("app/data")),    // a directory replaced whole
		os.Mkdir(in("app/data"), 0o755), //
		os.WriteFile(in("app/data/b"), []byte("b"), 0o644),
		os.WriteFile(in("big"), make([]byte, 64<<10), 0o644),
		os.Link(in("big"), in("big-link")), // counted once
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	sparse, err := os.Create(in("sparse"))
	if err == nil {
		err = sparse.Truncate(100 << 20) // holes: nothing allocated
		sparse.Close()
	}
	if err != nil {
		t.Fatal(err)
	}

	before := snapshot(t, root)
	v, err := OpenView(root)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.ResolveContainer("0123"); err != nil || got != cid {
		t.Errorf("ResolveContainer(prefix) = %q, %v", got, err)
	}
	if _, err := v.ResolveContainer("fff"); err == nil {
		t.Error("ResolveContainer of an unknown prefix succeeded")
	}
	changes, err := v.Diff(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.String())
	}
	want := []string{"C /app", "D /app/conf", "C /app/data", "D /app/data/a", "A /app/data/b", "A /big", "A /big-link",
		"C /bin", "D /bin/sh", "C /etc", "C /etc/passwd", "A /new", "A /sparse"}
	if !slices.Equal(got, want) {
		t.Errorf("Diff:\n got %q\nwant %q", got, want)
	}

	du, err := v.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, root); !slices.Equal(before, after) {
		t.Error("OpenView, Diff or DiskUsage changed the store")
	}
	if want := duBytes(t, root); du.Total.Bytes != want {
		t.Errorf("Total = %d bytes, du -sx says %d", du.Total.Bytes, want)
	}
	var layerDirs []string
	var layerBytes int64
	for _, l := range du.Layers {
		layerDirs = append(layerDirs, s.layerPath(l.ChainID))
		layerBytes += l.Usage.Bytes
	}
	if want := duBytes(t, layerDirs...); layerBytes != want {
		t.Errorf("layers = %d bytes, du says %d", layerBytes, want)
	}
	if len(du.Containers) != 1 {
		t.Fatalf("containers = %+v", du.Containers)
	}
	upper := filepath.Join(s.rootfsPath(cid), "diff")
	var upperSelf unix.Stat_t
	if err := unix.Lstat(upper, &upperSelf); err != nil {
		t.Fatal(err)
	}
	w := du.Containers[0].Writable.Bytes
	if want := duBytes(t, upper) - upperSelf.Blocks*512; w != want {
		t.Errorf("writable = %d bytes, du of the upper directory without itself says %d", w, want)
	}
	// The 64 KiB file once (two names), the sparse file's holes not at all.
	if w < 64<<10 || w >= 2*64<<10 {
		t.Errorf("writable = %d bytes; want the hard-linked 64 KiB once and no sparse holes", w)
	}
	if _, _, ok := s.CachedRootfsUsage(cid); ok {
		t.Error("CachedRootfsUsage before any measurement reports one")
	}
	if measured, _, err := s.RootfsUsage(cid, 0); err != nil || int64(measured) != w {
		t.Errorf("RootfsUsage = %d, %v; DiskUsage says %d", measured, err, w)
	}
	if cached, at, ok := s.CachedRootfsUsage(cid); !ok || cached.Bytes != w || at.IsZero() {
		t.Errorf("CachedRootfsUsage after RootfsUsage = %+v %v %v; want %d bytes", cached, at, ok, w)
	}

	rows := du.Summary(func(id string) bool { return id == cid })
	byType := map[string]SummaryRow{}
	for _, r := range rows {
		byType[r.Type] = r
	}
	layerSize := map[string]int64{}
	for _, l := range du.Layers {
		layerSize[l.ChainID.String()] = l.Usage.Bytes
	}
	var unusedUnique int64
	for _, im := range du.Images {
		if im.Containers == 0 {
			unusedUnique = im.Unique
		}
		if im.Size != im.Shared+im.Unique || im.Shared == 0 || im.Unique == 0 {
			t.Errorf("image %s: size %d shared %d unique %d; want a shared base and a layer of its own", im.ID, im.Size, im.Shared, im.Unique)
		}
	}
	im := byType["Images"]
	if im.Count != 2 || im.Active != 1 || im.Size != layerBytes || im.Reclaimable != unusedUnique || im.Size != im.Shared+im.Unique {
		t.Errorf("Images row = %+v; want 2 images, 1 active, size %d, reclaimable %d", im, layerBytes, unusedUnique)
	}
	if c := byType["Containers"]; c.Count != 1 || c.Active != 1 || c.Size != w || c.Reclaimable != 0 {
		t.Errorf("Containers row = %+v", c)
	}
	if l := byType["Layers"]; l.Count != 3 || l.Active != 2 || l.Size != layerBytes {
		t.Errorf("Layers row = %+v", l)
	}
}

func TestOpenViewRefusesOtherDirectories(t *testing.T) {
	for name, mk := range map[string]func(string) error{
		"empty":         func(string) error { return nil },
		"only images":   func(d string) error { return os.Mkdir(filepath.Join(d, "images"), 0o700) },
		"overlay2 file": func(d string) error { return os.WriteFile(filepath.Join(d, "overlay2"), nil, 0o600) },
	} {
		d := t.TempDir()
		if err := mk(d); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenView(d); !errors.Is(err, ErrNotStore) {
			t.Errorf("%s: OpenView = %v, want ErrNotStore", name, err)
		}
		if entries, _ := os.ReadDir(d); len(entries) > 1 {
			t.Errorf("%s: OpenView created %d entries", name, len(entries))
		}
	}
	if _, err := OpenView(filepath.Join(t.TempDir(), "absent")); !errors.Is(err, ErrNotStore) {
		t.Errorf("absent root: OpenView = %v, want ErrNotStore", err)
	}
}

package framework

import (
	"archive/tar"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestDirEntries(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr", "bin", "tool"), []byte("x"), 0o755))
	must(os.Chmod(filepath.Join(root, "usr", "bin", "tool"), os.ModeSetuid|0o755))
	must(os.Symlink("usr/bin", filepath.Join(root, "bin")))
	must(os.Mkdir(filepath.Join(root, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(root, "tmp"), os.ModeSticky|0o777))

	got, err := DirEntries(root)
	must(err)
	want := map[string]Entry{
		"bin":          {Type: tar.TypeSymlink, Mode: 0o777, Linkname: "usr/bin"},
		"tmp":          {Type: tar.TypeDir, Mode: 0o1777},
		"usr":          {Type: tar.TypeDir, Mode: 0o755},
		"usr/bin":      {Type: tar.TypeDir, Mode: 0o755},
		"usr/bin/tool": {Type: tar.TypeReg, Mode: 0o4755, Body: []byte("x")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for _, e := range got {
		w, ok := want[e.Name]
		if !ok {
			t.Errorf("unexpected entry %q", e.Name)
			continue
		}
		if e.Type != w.Type || e.Mode != w.Mode || e.Linkname != w.Linkname || string(e.Body) != string(w.Body) {
			t.Errorf("%s: got type %c mode %o link %q body %q, want type %c mode %o link %q body %q",
				e.Name, e.Type, e.Mode, e.Linkname, e.Body, w.Type, w.Mode, w.Linkname, w.Body)
		}
	}

	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	if _, err := DirEntries(root); err == nil {
		t.Error("a fifo was listed; want an error")
	}
}

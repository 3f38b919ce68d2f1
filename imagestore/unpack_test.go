package imagestore

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func unpackTo(t *testing.T, tarball []byte) (string, layerUsage, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: owners, device nodes, trusted xattrs")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "outside"), []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := unpackLayer(bytes.NewReader(tarball), dir)
	return dir, u, err
}

// assertOutsideUntouched checks that nothing next to the layer dir changed.
func assertOutsideUntouched(t *testing.T, dir string) {
	t.Helper()
	base := filepath.Dir(dir)
	entries, _ := os.ReadDir(base)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("outside the layer dir: %v", names)
	}
	if b, err := os.ReadFile(filepath.Join(base, "outside")); err != nil || string(b) != "original" {
		t.Errorf("outside file changed: %q %v", b, err)
	}
}

func TestUnpackEntryTypes(t *testing.T) {
	suid := file("bin/su", "su")
	suid.mode, suid.uid, suid.gid = 0o4755, 1000, 1001
	x := file("bin/cap", "c")
	x.xattrs = map[string]string{"user.test": "v", "trusted.overlay.redirect": "/etc"}
	chr := entry{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1}
	fifo := entry{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600}
	dirWithMode := dir("private")
	dirWithMode.mode, dirWithMode.uid = 0o700, 33
	dir, u, err := unpackTo(t, buildTar(t, entry{name: "./", typ: tar.TypeDir, mode: 0o777},
		dir("bin"), suid, x, symlink("bin/sh", "/bin/busybox"), hardlink("bin/su2", "bin/su"),
		chr, fifo, dirWithMode, file("private/f", "p"), file("implicit/parent/f", "i")))
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	check := func(name string, mode uint32, uid, gid uint32) {
		t.Helper()
		if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Mode != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", name, st.Mode, st.Uid, st.Gid, mode, uid, gid)
		}
	}
	check("bin/su", unix.S_IFREG|0o4755, 1000, 1001)
	if st.Nlink != 2 {
		t.Errorf("hardlink: nlink %d", st.Nlink)
	}
	if st.Mtim.Sec != testTime.Unix() {
		t.Errorf("mtime %d, want %d", st.Mtim.Sec, testTime.Unix())
	}
	check("bin/sh", unix.S_IFLNK|0o777, 0, 0)
	if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "/bin/busybox" {
		t.Errorf("symlink target %q", l)
	}
	check("dev/null", unix.S_IFCHR|0o666, 0, 0)
	if unix.Major(st.Rdev) != 1 {
		t.Errorf("device major %d", unix.Major(st.Rdev))
	}
	check("run/fifo", unix.S_IFIFO|0o600, 0, 0)
	check("private", unix.S_IFDIR|0o700, 33, 0)
	if st.Mtim.Sec != testTime.Unix() {
		t.Errorf("dir mtime %d not kept after its children were written", st.Mtim.Sec)
	}
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "bin/cap"), "user.test", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("user xattr: %q %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dir, "bin/cap"), "trusted.overlay.redirect", buf); err == nil {
		t.Errorf("trusted.overlay xattr from the tar was applied")
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
		t.Errorf("layer root mode changed to %v", fi.Mode())
	}
	if u.Bytes != 2+1+1+1 || u.Inodes < 11 {
		t.Errorf("usage = %+v", u)
	}
	assertOutsideUntouched(t, dir)
}

func TestUnpackWhiteouts(t *testing.T) {
	dir, _, err := unpackTo(t, buildTar(t, dir("etc"), file("etc/.wh.passwd", ""), dir("opq"),
		file("opq/.wh..wh..opq", ""), file("opq/kept", "k"), file(".wh..wh.plnk", ""), file("gone/.wh.deep", "")))
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	for _, name := range []string{"etc/passwd", "gone/deep"} {
		if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: mode %o rdev %d, want a 0/0 char device", name, st.Mode, st.Rdev)
		}
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "opq"), opaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr: %q %v", buf[:n], err)
	}
	for _, name := range []string{"etc/.wh.passwd", "opq/.wh..wh..opq", ".wh..wh.plnk"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s written literally", name)
		}
	}
}

func TestUnpackReplaces(t *testing.T) {
	dir, _, err := unpackTo(t, buildTar(t, dir("a"), file("a/f", "1"), file("a", "now a file"),
		file("b", "file"), dir("b"), file("b/x", "x"), file("c", "old"), file("c", "new"),
		symlink("d", "/etc"), file("d", "plain")))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a": "now a file", "b/x": "x", "c": "new", "d": "plain"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q %v, want %q", name, b, err, want)
		}
	}
	assertOutsideUntouched(t, dir)
}

func TestUnpackRefusesEscapes(t *testing.T) {
	tests := map[string][]entry{
		"dotdot":                       {file("../outside", "pwned")},
		"nested dotdot":                {dir("a"), file("a/../../outside", "pwned")},
		"absolute":                     {file("/tmp/x", "pwned")},
		"write through symlink out":    {symlink("s", ".."), file("s/outside", "pwned")},
		"write through abs symlink":    {symlink("s", "/tmp"), file("s/x", "pwned")},
		"dir through symlink":          {symlink("s", ".."), dir("s/newdir")},
		"hardlink target dotdot":       {hardlink("h", "../outside")},
		"hardlink target via symlink":  {symlink("s", ".."), hardlink("h", "s/outside")},
		"hardlink target absolute":     {hardlink("h", "/etc/passwd")},
		"parent is a file":             {file("f", "x"), file("f/x", "y")},
		"whiteout of dotdot":           {file("a/.wh...", "")},
		"whiteout through symlink":     {symlink("s", ".."), file("s/.wh.outside", "")},
		"opaque through symlink":       {symlink("s", ".."), file("s/.wh..wh..opq", "")},
		"symlink then hardlink escape": {symlink("s", "../outside"), hardlink("h", "s/x")},
	}
	for name, entries := range tests {
		t.Run(name, func(t *testing.T) {
			dir, _, err := unpackTo(t, buildTar(t, entries...))
			if err == nil {
				t.Errorf("accepted")
			}
			assertOutsideUntouched(t, dir)
		})
	}
}

func TestUnpackTruncated(t *testing.T) {
	tb := buildTar(t, file("big", string(bytes.Repeat([]byte("x"), 5000))))
	if _, _, err := unpackTo(t, tb[:3000]); err == nil {
		t.Errorf("truncated tar accepted")
	}
}

func FuzzUnpack(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root")
	}
	seeds := [][]entry{
		{dir("a"), file("a/b", "c"), symlink("a/l", "/etc"), hardlink("a/h", "a/b")},
		{symlink("s", ".."), file("s/outside", "pwned")},
		{file("../x", "y")},
		{file("x/.wh.y", ""), file("x/.wh..wh..opq", "")},
		{entry{name: "d", typ: tar.TypeChar, mode: 0o600, major: 1, minor: 3}},
		{file("f", "x"), dir("f"), file("f/g", "h")},
	}
	for _, s := range seeds {
		f.Add(buildTar(f, s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		dir := filepath.Join(base, "layer")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(base, "outside"), []byte("original"), 0o644)
		unpackLayer(bytes.NewReader(data), dir) // errors are fine; escapes are not
		assertOutsideUntouched(t, dir)
	})
}

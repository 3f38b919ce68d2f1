package imagestore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func topDirFlagSet(t *testing.T, dir string) bool {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatalf("get flags of %s: %v", dir, err)
	}
	return flags&fsTopDirFlag != 0
}

// onExt reports whether dir is on ext2/3/4, the file systems with the flag.
func onExt(t *testing.T, dir string) bool {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == unix.EXT4_SUPER_MAGIC
}

func TestMarkTopDir(t *testing.T) {
	tests := []struct {
		name string
		dir  func(t *testing.T) string
		// want: "set" (ext4: flag on afterwards), "unsupported"
		// (errNoTopDir) or "error" (any other error).
		want string
	}{
		{"ext4 directory", func(t *testing.T) string {
			d := t.TempDir()
			if !onExt(t, d) {
				t.Skipf("%s is not on ext2/3/4", d)
			}
			return d
		}, "set"},
		{"tmpfs directory", func(t *testing.T) string {
			var st unix.Statfs_t
			if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
				t.Skip("no tmpfs at /dev/shm")
			}
			d, err := os.MkdirTemp("/dev/shm", "topdir-test-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}, "unsupported"},
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent") }, "error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			// Twice: setting an already set flag must succeed too.
			for range 2 {
				err := markTopDir(dir)
				switch tc.want {
				case "set":
					if err != nil {
						t.Fatal(err)
					}
					if !topDirFlagSet(t, dir) {
						t.Fatalf("top-directory flag not set on %s", dir)
					}
				case "unsupported":
					if !errors.Is(err, errNoTopDir) {
						t.Fatalf("got %v, want errNoTopDir", err)
					}
				case "error":
					if err == nil || errors.Is(err, errNoTopDir) {
						t.Fatalf("got %v, want an error other than errNoTopDir", err)
					}
				}
			}
		})
	}
}

func TestNewMarksLayerDirTopDir(t *testing.T) {
	root := t.TempDir()
	if !onExt(t, root) {
		t.Skipf("%s is not on ext2/3/4", root)
	}
	s := newTestStore(t, root)
	if !topDirFlagSet(t, s.layerDir) {
		t.Fatalf("top-directory flag not set on %s", s.layerDir)
	}
}

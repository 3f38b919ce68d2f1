package oci

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func mustStatDev(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Skipf("stat %s: %v", p, err)
	}
	return st
}

// fakeDevDir makes a directory holding a copy of one device node (needs
// root) plus a regular file, which must be ignored.
func fakeDevDir(t *testing.T, st unix.Stat_t) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	dir := t.TempDir()
	if err := unix.Mknod(filepath.Join(dir, "null"), st.Mode, int(st.Rdev)); err != nil {
		t.Skipf("mknod: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notadevice"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "pts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(dir, "pts", "skipped"), st.Mode, int(st.Rdev)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDevices(t *testing.T) {
	st := mustStatDev(t, "/dev/null")
	dir := fakeDevDir(t, st)
	if err := os.Symlink(filepath.Join(dir, "null"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	in := testInput(t)
	in.Host.DevDir = dir
	in.Config.Devices = []*runtime.Device{
		{HostPath: filepath.Join(dir, "link"), ContainerPath: "/dev/mynull", Permissions: "rw"},
	}
	s := mustGenerate(t, in).Spec
	if len(s.Linux.Devices) != 1 {
		t.Fatalf("devices = %+v", s.Linux.Devices)
	}
	d := s.Linux.Devices[0]
	if d.Path != "/dev/mynull" || d.Type != "c" || d.Major != int64(unix.Major(st.Rdev)) || d.Minor != int64(unix.Minor(st.Rdev)) {
		t.Errorf("device = %+v", d)
	}
	rules := s.Linux.Resources.Devices
	if len(rules) != 2 || rules[0].Allow || !rules[1].Allow || rules[1].Access != "rw" || *rules[1].Major != d.Major {
		t.Errorf("rules = %+v", rules)
	}

	// A directory adds the devices below it, under the container path.
	in.Config.Devices = []*runtime.Device{{HostPath: dir, ContainerPath: "/dev/sub"}}
	s = mustGenerate(t, in).Spec
	paths := map[string]bool{}
	for _, d := range s.Linux.Devices {
		paths[d.Path] = true
	}
	if !paths["/dev/sub/null"] || !paths["/dev/sub/pts/skipped"] || len(paths) != 2 {
		t.Errorf("directory devices = %v", paths)
	}

	for name, d := range map[string]*runtime.Device{
		"missing":         {HostPath: filepath.Join(dir, "gone"), ContainerPath: "/dev/x"},
		"not a device":    {HostPath: filepath.Join(dir, "notadevice"), ContainerPath: "/dev/x"},
		"bad perms":       {HostPath: filepath.Join(dir, "null"), ContainerPath: "/dev/x", Permissions: "rwx"},
		"relative host":   {HostPath: "dev/null", ContainerPath: "/dev/x"},
		"dotdot target":   {HostPath: filepath.Join(dir, "null"), ContainerPath: "/dev/../x"},
		"dir outside dev": {HostPath: filepath.Dir(dir), ContainerPath: "/dev/x"},
	} {
		t.Run(name, func(t *testing.T) {
			in := testInput(t)
			in.Host.DevDir = dir
			in.Config.Devices = []*runtime.Device{d}
			if _, err := GenerateSpec(in); err == nil {
				t.Fatal("no error")
			} else {
				mustInvalid(t, err, "")
			}
		})
	}
}

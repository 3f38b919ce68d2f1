package imagestore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// testUserNS starts a process in a new user namespace that maps 0 to
// hostID and returns its namespace path.
func testUserNS(t *testing.T, hostID int) string {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostID, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostID, Size: 65536}},
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot create a user namespace: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/user"
}

func TestRootfsIDMapped(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("w", "v1", testImage{layers: [][]byte{baseLayer(t), buildTar(t, dir("data"), file("data/x", "x"))}})
	reg.push("one", "v1", testImage{layers: [][]byte{baseLayer(t)}})
	s := newTestStore(t, t.TempDir())
	ctx := context.Background()
	img, err := s.Pull(ctx, reg.addr()+"/w:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	one, err := s.Pull(ctx, reg.addr()+"/one:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	const hostID = 300000
	ns := &UserNS{Path: testUserNS(t, hostID), UID: hostID, GID: hostID}
	m, err := s.CreateRootfs(ctx, "c1", img.ID, RootfsOptions{UserNS: ns, VolumeImages: []string{one.ID}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{m.Path, filepath.Join(m.Path, "etc/passwd"), filepath.Join(m.Path, "data/x"), filepath.Join(m.Volumes[0], "etc/passwd")} {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != hostID || st.Gid != hostID {
			t.Errorf("%s is owned by %d:%d, want the namespace's root %d", p, st.Uid, st.Gid, hostID)
		}
	}
	// The layers themselves keep their owners.
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(s.layerDir, linkDir, shortID(s.images[img.ID].Layers[1]), "data/x"), &st); err != nil || st.Uid != 0 {
		t.Errorf("layer file owner %d (%v), want 0", st.Uid, err)
	}
	if err := os.WriteFile(filepath.Join(m.Path, "new"), nil, 0o644); err != nil {
		t.Errorf("write into the id-mapped rootfs: %v", err)
	}
	if err := s.RemoveRootfs(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	s.WaitRemovals() // the writable overlay comes off in the background
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(s.layerDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 0 {
		t.Errorf("mounts left after RemoveRootfs: %v", mounts)
	}
}

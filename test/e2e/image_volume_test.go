package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// pushVolumeImage pushes a two-layer image of data files (the second layer
// removes one file of the first) and pulls it; it returns the image ID.
func (e *ctrEnv) pushVolumeImage(t *testing.T) (ref, id string) {
	t.Helper()
	img := &framework.Image{}
	img.AddLayer(framework.Dir("data", 0o755), framework.File("data/hello", "hello from the image\n", 0o644),
		framework.File("data/gone", "removed by the next layer\n", 0o644), framework.Dir("other", 0o755))
	img.AddLayer(framework.Dir("data", 0o755), framework.Whiteout("data/gone"), framework.File("data/second", "second layer\n", 0o644),
		framework.Symlink("data/escape", "../../../../etc"))
	e.reg.Push(t, "volume", "v1", img)
	ref = e.reg.Ref("volume", "v1")
	resp, err := e.d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatal(err)
	}
	return ref, resp.ImageRef
}

func imageMount(ctrPath, image, sub string) *runtime.Mount {
	return &runtime.Mount{ContainerPath: ctrPath, Readonly: true, Image: &runtime.ImageSpec{Image: image}, ImageSubPath: sub}
}

// TestImageVolumeMounts: image volumes (CRI Mount.image) show the image's
// merged view read-only, whole or from a subPath; ContainerStatus names the
// image; they survive a daemon restart and leave nothing after removal.
func TestImageVolumeMounts(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)
	ref, imageID := e.pushVolumeImage(t)
	cfg := e.config("imgvol", `cat /vol/data/hello /sub/second /bb/bin/busybox >/dev/null &&
test ! -e /vol/data/gone && test ! -e /sub/data && test -d /vol/other &&
if touch /vol/new 2>/dev/null || touch /sub/new 2>/dev/null; then echo WRITABLE; fi
grep -E " /(vol|sub|bb) " /proc/mounts; echo DONE; exec sleep 600`)
	cfg.Mounts = []*runtime.Mount{imageMount("/vol", ref, ""), imageMount("/sub", imageID, "data"), imageMount("/bb", e.image, "")}
	id := e.run(t, cfg)

	waitLog(t, e, "imgvol", "DONE")
	out := strings.Join(e.logLines(t, "imgvol"), "\n")
	if strings.Contains(out, "WRITABLE") {
		t.Errorf("an image volume is writable:\n%s", out)
	}
	for _, dst := range []string{"/vol", "/sub", "/bb"} {
		if !regexpMountRO(out, dst) {
			t.Errorf("%s is not a read-only mount:\n%s", dst, out)
		}
	}
	st, _ := e.status(t, id)
	refs := map[string]string{}
	for _, m := range st.GetMounts() {
		refs[m.GetContainerPath()] = m.GetImage().GetImageRef()
	}
	if refs["/vol"] != imageID || refs["/sub"] != imageID || refs["/bb"] == "" {
		t.Errorf("ContainerStatus mounts' image_ref = %v, want %s for /vol and /sub", refs, imageID)
	}

	// A restart of the daemon keeps the volumes, and a removed image
	// stays while a volume uses its layers.
	removeImage(t, e.d, ref)
	e.d.Stop(t)
	e.d.Start(t)
	r, err := e.d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"cat", "/vol/data/hello", "/sub/second"}, Timeout: 10})
	if err != nil || r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "second layer") {
		t.Errorf("image volumes after restart: %v code %d %q %q", err, r.GetExitCode(), r.GetStdout(), r.GetStderr())
	}
	if _, err := e.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	_, info := e.status(t, id)
	e.remove(t, id)
	e.assertContainerGone(t, id, info)
	if left := layerStoreEntries(t, e.d); len(left) != 1 {
		t.Errorf("layer store after removing the container and the volume's image: %v (want busybox's layer only)", left)
	}
}

// TestImageVolumeRefusals: a read-write image volume, a subPath that is
// missing or leaves the image, and an image not pulled are refused, and
// leave nothing behind.
func TestImageVolumeRefusals(t *testing.T) {
	e := newCtrEnv(t)
	ref, _ := e.pushVolumeImage(t)
	before := layerStoreEntries(t, e.d)
	rw := imageMount("/vol", ref, "")
	rw.Readonly = false
	for _, tc := range []struct {
		name  string
		mount *runtime.Mount
		code  codes.Code
	}{
		{"read-write", rw, codes.InvalidArgument},
		{"missing subpath", imageMount("/vol", ref, "nope"), codes.InvalidArgument},
		{"subpath with dotdot", imageMount("/vol", ref, "data/../.."), codes.InvalidArgument},
		{"subpath through a symlink out of the image", imageMount("/vol", ref, "data/escape/passwd"), codes.InvalidArgument},
		{"image not pulled", imageMount("/vol", e.reg.Ref("absent", "v1"), ""), codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config("refused", "true")
			cfg.Mounts = []*runtime.Mount{tc.mount}
			_, err := e.d.Runtime.CreateContainer(framework.Ctx(t), &runtime.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCf})
			if status.Code(err) != tc.code {
				t.Errorf("CreateContainer: %v, want %v", err, tc.code)
			}
		})
	}
	if after := layerStoreEntries(t, e.d); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("layer store changed by refused creates: %v -> %v", before, after)
	}
	if mounts, _ := framework.MountsUnder(filepath.Join(e.d.Root, "overlay2")); len(mounts) != 0 {
		t.Errorf("mounts left by refused creates: %v", mounts)
	}
	if ids, _ := os.ReadDir(filepath.Join(e.d.Root, "containers")); len(ids) != 0 {
		t.Errorf("container records left by refused creates: %d", len(ids))
	}
}

// regexpMountRO tells whether a /proc/mounts line for dst has "ro" first
// in its options.
func regexpMountRO(procMounts, dst string) bool {
	for _, line := range strings.Split(procMounts, "\n") {
		f := strings.Fields(line)
		// log lines are "<stream> <tag> <device> <dst> <type> <opts> ..."
		if len(f) >= 6 && f[3] == dst && strings.HasPrefix(f[5], "ro") && (len(f[5]) == 2 || f[5][2] == ',') {
			return true
		}
	}
	return false
}

// waitLog waits until the container's log has a line holding want.
func waitLog(t *testing.T, e *ctrEnv, name, want string) {
	t.Helper()
	var b []byte
	if !framework.Poll(30*time.Second, func() bool {
		b, _ = os.ReadFile(filepath.Join(e.podCf.LogDirectory, name, "0.log"))
		return strings.Contains(string(b), want)
	}) {
		t.Fatalf("log of %s has no %q:\n%s", name, want, b)
	}
}

package e2e

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/criserver/criserver/test/e2e/framework"
)

// TestImageImport loads an OCI archive this suite writes and a docker
// archive skopeo writes into a running daemon with `criserver image
// import`, runs a container from each, and refuses what is not an archive
// without storing anything.
func TestImageImport(t *testing.T) {
	e := newCtrEnv(t)
	dir := t.TempDir()
	img := framework.BusyboxImage(t)
	img.AddLayer(framework.File("imported", "from an archive\n", 0o644))
	built, err := img.Build()
	if err != nil {
		t.Fatal(err)
	}
	ociPath := filepath.Join(dir, "image.oci.tar")
	if err := built.WriteOCIArchive(ociPath, "registry.test/imported/busybox:oci", "oci"); err != nil {
		t.Fatal(err)
	}
	dockerPath := filepath.Join(dir, "image.docker.tar")
	if out, err := exec.Command("skopeo", "copy", "-q", "oci-archive:"+ociPath,
		"docker-archive:"+dockerPath+":registry.test/imported/busybox:docker").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy to a docker archive: %v: %s", err, out)
	}
	before := len(listImages(t, e.d))

	out := mustCriserver(t, "image", "import", "--listen", e.d.Socket, ociPath)
	if want := built.ID + " registry.test/imported/busybox:oci"; strings.TrimSpace(out) != want {
		t.Errorf("import printed %q, want %q", out, want)
	}
	// skopeo keeps the config blob, so this is the same image, now with
	// both names.
	out = mustCriserver(t, "image", "import", "--listen", e.d.Socket, dockerPath)
	if want := built.ID + " registry.test/imported/busybox:oci,registry.test/imported/busybox:docker"; strings.TrimSpace(out) != want {
		t.Errorf("import printed %q, want %q", out, want)
	}
	for i, ref := range []string{"registry.test/imported/busybox:oci", "registry.test/imported/busybox:docker"} {
		st := imageStatus(t, e.d, ref, false)
		if st.Image == nil || !slices.Contains(st.Image.RepoTags, ref) {
			t.Fatalf("ImageStatus(%s) = %v", ref, st.Image)
		}
		name := "imported" + string(rune('a'+i))
		id := e.run(t, framework.ContainerConfig(ref, name, "cat /imported"))
		if st := e.waitExit(t, id, 20*time.Second); st.ExitCode != 0 {
			t.Fatalf("container of %s exited %d", ref, st.ExitCode)
		}
		if lines := e.logLines(t, name); !slices.Contains(lines, "stdout F from an archive") {
			t.Errorf("container of %s logged %q", ref, lines)
		}
	}

	bad := filepath.Join(dir, "bad.tar")
	if out, err := exec.Command("tar", "-cf", bad, "-C", dir, "image.oci.tar").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	_, errOut, code := criserverCmd(t, "image", "import", "--listen", e.d.Socket, bad)
	if code != 1 || !strings.Contains(errOut, "InvalidArgument") || !strings.Contains(errOut, "neither an OCI layout") {
		t.Errorf("importing a tarball of neither kind: exit %d, %q", code, errOut)
	}
	if got := len(listImages(t, e.d)); got != before+1 {
		t.Errorf("%d images after the imports, want %d", got, before+1)
	}
}

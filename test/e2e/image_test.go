package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

func pullImage(t *testing.T, d *framework.Daemon, ref string) (string, error) {
	t.Helper()
	resp, err := d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	return resp.GetImageRef(), err
}

func imageStatus(t *testing.T, d *framework.Daemon, ref string, verbose bool) *runtime.ImageStatusResponse {
	t.Helper()
	resp, err := d.Image.ImageStatus(framework.Ctx(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}, Verbose: verbose})
	if err != nil {
		t.Fatalf("ImageStatus(%s): %v", ref, err)
	}
	return resp
}

func removeImage(t *testing.T, d *framework.Daemon, ref string) {
	t.Helper()
	if _, err := d.Image.RemoveImage(framework.Ctx(t), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("RemoveImage(%s): %v", ref, err)
	}
}

func listImages(t *testing.T, d *framework.Daemon) []*runtime.Image {
	t.Helper()
	resp, err := d.Image.ListImages(framework.Ctx(t), &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Images
}

func imageFsUsed(t *testing.T, d *framework.Daemon) uint64 {
	t.Helper()
	resp, err := d.Image.ImageFsInfo(framework.Ctx(t), &runtime.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ImageFilesystems) != 1 || resp.ImageFilesystems[0].GetFsId().GetMountpoint() == "" {
		t.Fatalf("ImageFsInfo: %v", resp)
	}
	return resp.ImageFilesystems[0].GetUsedBytes().GetValue()
}

// layerStoreEntries lists overlay2 apart from the short-link dir.
func layerStoreEntries(t *testing.T, d *framework.Daemon) []string {
	t.Helper()
	d.WaitRemovals(t)
	entries, err := os.ReadDir(filepath.Join(d.Root, "overlay2"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "l" {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestImagePullStatusListRemove(t *testing.T) {
	reg := framework.StartRegistry(t)
	d := framework.StartDaemon(t)
	img := framework.BusyboxImage(t)
	img.Config.User = "1000:1000"
	built, err := img.Build()
	if err != nil {
		t.Fatal(err)
	}
	mdigest := reg.Push(t, "team/busybox", "1.0", img)
	ref := reg.Ref("team/busybox", "1.0")

	if used := imageFsUsed(t, d); used != 0 {
		t.Errorf("ImageFsInfo before any pull: %d bytes", used)
	}
	id, err := pullImage(t, d, ref)
	if err != nil {
		t.Fatal(err)
	}
	if id != built.ID {
		t.Errorf("PullImage ref = %s, want image ID %s", id, built.ID)
	}
	byDigest := reg.Addr + "/team/busybox@" + mdigest
	if id2, err := pullImage(t, d, byDigest); err != nil || id2 != id {
		t.Errorf("pull by digest: %s %v", id2, err)
	}
	for _, q := range []string{ref, byDigest, id, strings.TrimPrefix(id, "sha256:")[:12]} {
		st := imageStatus(t, d, q, false)
		if st.Image.GetId() != id {
			t.Errorf("ImageStatus(%s) = %v", q, st.Image)
		}
	}
	st := imageStatus(t, d, ref, true)
	if !slices.Equal(st.Image.RepoTags, []string{ref}) || !slices.Equal(st.Image.RepoDigests, []string{byDigest}) {
		t.Errorf("tags %v digests %v", st.Image.RepoTags, st.Image.RepoDigests)
	}
	if st.Image.GetUid().GetValue() != 1000 || st.Image.Size == 0 {
		t.Errorf("uid %v size %d", st.Image.GetUid(), st.Image.Size)
	}
	if !strings.Contains(st.Info["info"], `"imageSpec"`) || !strings.Contains(st.Info["info"], `"User":"1000:1000"`) {
		t.Errorf("verbose info = %q", st.Info["info"])
	}
	if imgs := listImages(t, d); len(imgs) != 1 || imgs[0].Id != id {
		t.Errorf("ListImages = %v", imgs)
	}
	if used := imageFsUsed(t, d); used < uint64(len(built.Layers[0])) {
		t.Errorf("ImageFsInfo after pull: %d bytes", used)
	}

	// Absent images: an empty status, a successful remove.
	if st := imageStatus(t, d, reg.Ref("team/busybox", "absent"), false); st.Image != nil {
		t.Errorf("status of an absent image: %v", st.Image)
	}
	removeImage(t, d, reg.Ref("team/busybox", "absent"))

	// Records survive a daemon restart.
	d.Stop(t)
	d.Start(t)
	if st := imageStatus(t, d, ref, false); st.Image.GetId() != id {
		t.Fatalf("after restart: %v", st.Image)
	}
	removeImage(t, d, ref)
	if st := imageStatus(t, d, id, false); st.Image != nil {
		t.Errorf("image still there after removing its only tag: %v", st.Image)
	}
	if used := imageFsUsed(t, d); used != 0 {
		t.Errorf("ImageFsInfo after remove: %d bytes", used)
	}
	if left := layerStoreEntries(t, d); len(left) != 0 {
		t.Errorf("overlay2 after remove: %v", left)
	}
}

func TestImageBadReferenceAndMissing(t *testing.T) {
	reg := framework.StartRegistry(t)
	d := framework.StartDaemon(t)
	for _, bad := range []string{"Bad Reference", "busybox:tag:tag", ""} {
		_, err := pullImage(t, d, bad)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("PullImage(%q) = %v, want InvalidArgument", bad, err)
		}
	}
	missing := reg.Ref("nothing", "here")
	_, err := pullImage(t, d, missing)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "nothing") {
		t.Errorf("PullImage(%s) = %v, want NotFound naming it", missing, err)
	}
	if st := imageStatus(t, d, missing, false); st.Image != nil {
		t.Errorf("status: %v", st.Image)
	}
}

func TestImageTagMovesAndRemoveSemantics(t *testing.T) {
	reg := framework.StartRegistry(t)
	d := framework.StartDaemon(t)
	old := framework.BusyboxImage(t)
	reg.Push(t, "app", "v1", old)
	ref := reg.Ref("app", "v1")
	oldID, err := pullImage(t, d, ref)
	if err != nil {
		t.Fatal(err)
	}
	newer := framework.BusyboxImage(t)
	newer.AddLayer(framework.File("app.txt", "new", 0o644))
	reg.Push(t, "app", "v1", newer)
	reg.Push(t, "app", "v2", newer)
	newID, err := pullImage(t, d, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pullImage(t, d, reg.Ref("app", "v2")); err != nil {
		t.Fatal(err)
	}
	if st := imageStatus(t, d, oldID, false); st.Image == nil || len(st.Image.RepoTags) != 0 {
		t.Errorf("old image after its tag moved: %v (want listed, untagged)", st.Image)
	}
	if len(listImages(t, d)) != 2 {
		t.Errorf("ListImages: %v", listImages(t, d))
	}
	// Removing one of two tags keeps the image.
	removeImage(t, d, ref)
	if st := imageStatus(t, d, newID, false); st.Image == nil || !slices.Equal(st.Image.RepoTags, []string{reg.Ref("app", "v2")}) {
		t.Fatalf("after untag: %v", st.Image)
	}
	// Removing the old image by ID keeps the base layer the new one shares.
	removeImage(t, d, oldID)
	if st := imageStatus(t, d, oldID, false); st.Image != nil {
		t.Errorf("old image still there")
	}
	// Removing by an ID prefix removes the image.
	removeImage(t, d, strings.TrimPrefix(newID, "sha256:")[:16])
	if len(listImages(t, d)) != 0 || len(layerStoreEntries(t, d)) != 0 {
		t.Errorf("left: images %v, overlay2 %v", listImages(t, d), layerStoreEntries(t, d))
	}
}

// blobCounter is a loopback proxy in front of the registry that counts
// blob downloads.
type blobCounter struct {
	mu    sync.Mutex
	gets  map[string]int
	slow  bool // blobs trickle at ~1 MB/s
	proxy *httptest.Server
}

// slowWriter sends in small chunks with pauses, so a pull stays in flight.
type slowWriter struct{ http.ResponseWriter }

func (w slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := min(len(p), 32<<10)
		m, err := w.ResponseWriter.Write(p[:chunk])
		n += m
		if err != nil {
			return n, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		time.Sleep(30 * time.Millisecond)
		p = p[chunk:]
	}
	return n, nil
}

func newBlobCounter(t *testing.T, reg *framework.Registry) *blobCounter {
	target, _ := url.Parse("http://" + reg.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	c := &blobCounter{gets: map[string]int{}}
	c.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := strings.Index(r.URL.Path, "/blobs/sha256:"); i >= 0 && r.Method == http.MethodGet {
			c.mu.Lock()
			c.gets[r.URL.Path[i+len("/blobs/"):]]++
			slow := c.slow
			c.mu.Unlock()
			if slow {
				w = slowWriter{w}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(c.proxy.Close)
	return c
}

func (c *blobCounter) addr() string { return strings.TrimPrefix(c.proxy.URL, "http://") }

func (c *blobCounter) count(d string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets[d]
}

func TestImageConcurrentPullsShareLayers(t *testing.T) {
	reg := framework.StartRegistry(t)
	d := framework.StartDaemon(t)
	a := framework.BusyboxImage(t)
	a.AddLayer(framework.File("a.txt", "a", 0o644))
	b := framework.BusyboxImage(t)
	b.AddLayer(framework.File("b.txt", "b", 0o644))
	ba, err := a.Build()
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "a", "v1", a)
	reg.Push(t, "b", "v1", b)
	counter := newBlobCounter(t, reg)

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i, repo := range []string{"a", "b", "a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pullImage(t, d, counter.addr()+"/"+repo+":v1")
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pull %d: %v", i, err)
		}
	}
	base := digest.FromBytes(ba.Layers[0]).String()
	if n := counter.count(base); n != 1 {
		t.Errorf("shared base layer downloaded %d times, want 1", n)
	}
	if n := len(listImages(t, d)); n != 2 {
		t.Errorf("%d images, want 2", n)
	}
	// 2 images: base + 2 top layers.
	if n := len(layerStoreEntries(t, d)); n != 3 {
		t.Errorf("%d layers in overlay2, want 3: %v", n, layerStoreEntries(t, d))
	}
}

func TestImageWhiteoutsGiveMergedView(t *testing.T) {
	reg := framework.StartRegistry(t)
	d := framework.StartDaemon(t)
	img := &framework.Image{}
	img.AddLayer(framework.Dir("etc", 0o755), framework.File("etc/keep", "k", 0o644), framework.File("etc/gone", "g", 0o644),
		framework.Dir("opq", 0o755), framework.File("opq/old", "o", 0o644))
	img.AddLayer(framework.Whiteout("etc/gone"), framework.Dir("opq", 0o755), framework.OpaqueWhiteout("opq"),
		framework.File("opq/new", "n", 0o644)).Compression = framework.Zstd
	built, err := img.Build()
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "wh", "v1", img)
	if _, err := pullImage(t, d, reg.Ref("wh", "v1")); err != nil {
		t.Fatal(err)
	}
	// Mount the two layers read-only the way a container's lowerdirs are.
	base := built.DiffIDs[0]
	top := digest.FromString(base.String() + " " + built.DiffIDs[1].String())
	lower := filepath.Join(d.Root, "overlay2", top.Encoded(), "diff") + ":" + filepath.Join(d.Root, "overlay2", base.Encoded(), "diff")
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+lower); err != nil {
		t.Fatalf("mount layers: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	for name, want := range map[string]bool{"etc/keep": true, "etc/gone": false, "opq/new": true, "opq/old": false} {
		_, err := os.Stat(filepath.Join(mnt, name))
		if (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", name, err == nil, want)
		}
	}
}

func TestImageDigestMismatchLeavesNoPartialState(t *testing.T) {
	reg := framework.StartRegistry(t)
	d := framework.StartDaemon(t)
	img := framework.BusyboxImage(t)
	built, err := img.Build()
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "bad", "v1", img)
	// Flip bytes of the stored layer blob: same length, another digest.
	blob := built.Layers[0]
	d0 := digest.FromBytes(blob)
	data := filepath.Join(reg.Dir, "data/docker/registry/v2/blobs/sha256", d0.Encoded()[:2], d0.Encoded(), "data")
	corrupt := bytes.Clone(blob)
	corrupt[len(corrupt)/2] ^= 0xff
	if err := os.WriteFile(data, corrupt, 0o644); err != nil {
		t.Fatalf("corrupt blob: %v", err)
	}
	_, err = pullImage(t, d, reg.Ref("bad", "v1"))
	if err == nil || !strings.Contains(err.Error(), d0.String()) {
		t.Fatalf("pull of a corrupt blob: %v, want an error naming the layer", err)
	}
	if imgs := listImages(t, d); len(imgs) != 0 {
		t.Errorf("images: %v", imgs)
	}
	if left := layerStoreEntries(t, d); len(left) != 0 {
		t.Errorf("overlay2 after failed pull: %v", left)
	}
	if used := imageFsUsed(t, d); used != 0 {
		t.Errorf("ImageFsInfo after failed pull: %d", used)
	}
	// Fixed upstream, the next pull succeeds.
	if err := os.WriteFile(data, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pullImage(t, d, reg.Ref("bad", "v1")); err != nil {
		t.Errorf("pull after the blob was fixed: %v", err)
	}
}

func TestImagePinned(t *testing.T) {
	reg := framework.StartRegistry(t)
	ref := reg.Ref("pinned", "v1")
	d := framework.StartDaemon(t, framework.WithConfig("[image]\npinned_images = [\""+ref+"\"]\n"))
	reg.Push(t, "pinned", "v1", framework.BusyboxImage(t))
	plain := framework.BusyboxImage(t)
	plain.AddLayer(framework.File("plain", "p", 0o644))
	reg.Push(t, "plain", "v1", plain)
	for _, r := range []string{ref, reg.Ref("plain", "v1")} {
		if _, err := pullImage(t, d, r); err != nil {
			t.Fatal(err)
		}
	}
	if !imageStatus(t, d, ref, false).Image.GetPinned() {
		t.Errorf("pinned image not reported pinned")
	}
	if imageStatus(t, d, reg.Ref("plain", "v1"), false).Image.GetPinned() {
		t.Errorf("unpinned image reported pinned")
	}
}

func TestImageKillDuringPullLeavesNoLayer(t *testing.T) {
	reg := framework.StartRegistry(t)
	d := framework.StartDaemon(t)
	img := framework.BusyboxImage(t)
	noise := make([]byte, 3<<20)
	for i := range noise {
		noise[i] = byte(i*7919 + i>>8*31) // poorly compressible, reproducible
	}
	img.AddLayer(framework.File("big", string(noise), 0o644)).Compression = framework.Uncompressed
	reg.Push(t, "big", "v1", img)
	counter := newBlobCounter(t, reg)
	counter.slow = true

	pulled := make(chan error, 1)
	go func() {
		_, err := pullImage(t, d, counter.addr()+"/big:v1")
		pulled <- err
	}()
	// Wait until a layer is being unpacked, then kill -9 the daemon.
	unpacking := func() bool {
		return slices.ContainsFunc(layerStoreEntries(t, d), func(n string) bool { return strings.HasPrefix(n, "tmp-") })
	}
	if !framework.Poll(30*time.Second, unpacking) {
		t.Fatal("no layer unpack in progress seen")
	}
	d.Kill(t)
	if err := <-pulled; err == nil {
		t.Fatal("pull succeeded although the daemon was killed")
	}
	d.Start(t)
	for _, n := range layerStoreEntries(t, d) {
		if strings.HasPrefix(n, "tmp-") {
			t.Errorf("temp dir %s survived the restart", n)
		}
	}
	if imgs := listImages(t, d); len(imgs) != 0 {
		t.Errorf("images after the killed pull: %v", imgs)
	}
	counter.mu.Lock()
	counter.slow = false
	counter.mu.Unlock()
	if _, err := pullImage(t, d, counter.addr()+"/big:v1"); err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	if st := imageStatus(t, d, counter.addr()+"/big:v1", false); st.Image == nil {
		t.Errorf("image missing after the second pull")
	}
}

func TestImageManifestListPicksHostPlatform(t *testing.T) {
	reg := framework.StartRegistry(t)
	d := framework.StartDaemon(t)
	host := framework.BusyboxImage(t)
	other := framework.BusyboxImage(t)
	other.Platform = ocispec.Platform{OS: "linux", Architecture: "s390x"}
	hostDigest := reg.Push(t, "multi", "host", host)
	otherDigest := reg.Push(t, "multi", "other", other)
	hb, _ := host.Build()
	ob, _ := other.Build()
	idx, _ := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{
			{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(otherDigest), Size: int64(len(ob.Manifest)), Platform: &ocispec.Platform{OS: "linux", Architecture: "s390x"}},
			{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(hostDigest), Size: int64(len(hb.Manifest)), Platform: &ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}},
		},
	})
	idxDigest, err := reg.PushManifest("multi", "v1", ocispec.MediaTypeImageIndex, idx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := pullImage(t, d, reg.Ref("multi", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	if id != hb.ID {
		t.Errorf("pulled %s, want the host platform's %s", id, hb.ID)
	}
	if st := imageStatus(t, d, reg.Ref("multi", "v1"), false); !slices.Contains(st.Image.GetRepoDigests(), reg.Addr+"/multi@"+idxDigest) {
		t.Errorf("RepoDigests %v lack the index digest", st.Image.GetRepoDigests())
	}
}

func TestImageMirrorFromRegistriesConf(t *testing.T) {
	mirror := framework.StartRegistry(t)
	mirror.Push(t, "team/app", "v1", framework.BusyboxImage(t))
	conf := filepath.Join(t.TempDir(), "registries.conf")
	// upstream.invalid never resolves: only the mirror can serve the pull.
	content := "[[registry]]\nlocation = \"upstream.invalid\"\n[[registry.mirror]]\nlocation = \"" + mirror.Addr + "\"\ninsecure = true\n"
	if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	d := framework.StartDaemon(t, framework.WithConfig("[image]\nregistries_config = \""+conf+"\"\n"))
	if _, err := pullImage(t, d, "upstream.invalid/team/app:v1"); err != nil {
		t.Fatal(err)
	}
	if st := imageStatus(t, d, "upstream.invalid/team/app:v1", false); st.Image == nil {
		t.Errorf("image not found under the name asked for")
	}
}

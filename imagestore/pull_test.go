package imagestore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newTestStore(t *testing.T, root string, mod ...func(*Config)) *Store {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: unpack sets owners and creates device nodes")
	}
	cfg := DefaultConfig()
	cfg.ProgressTimeout = 5 * time.Second
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(context.Background(), cfg, root)
	if err != nil {
		t.Fatal(err)
	}
	// Before the temp dir goes: the trash may still be deleting in it.
	t.Cleanup(s.WaitRemovals)
	return s
}

func baseLayer(t testing.TB) []byte {
	return buildTar(t, dir("bin"), file("bin/sh", "#!shell"), dir("etc"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"))
}

// tempLeftovers lists what in overlay2 is neither l/ nor a committed layer.
func tempLeftovers(t *testing.T, s *Store) []string {
	entries, err := os.ReadDir(s.layerDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestPullResolveAndLayout(t *testing.T) {
	reg := newFakeRegistry(t)
	app := buildTar(t, dir("app"), file("app/run", "run"))
	p := reg.push("team/app", "v1", testImage{layers: [][]byte{baseLayer(t), app}, compression: []string{"gzip", "zstd"},
		config: ocispec.ImageConfig{User: "1000", Cmd: []string{"/bin/sh"}}})
	s := newTestStore(t, t.TempDir())
	ref := reg.addr() + "/team/app:v1"
	img, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != p.config.String() {
		t.Errorf("ID = %s, want config digest %s", img.ID, p.config)
	}
	if want := []string{ref}; !slices.Equal(img.RepoTags, want) {
		t.Errorf("RepoTags = %v, want %v", img.RepoTags, want)
	}
	if want := []string{reg.addr() + "/team/app@" + p.manifest.String()}; !slices.Equal(img.RepoDigests, want) {
		t.Errorf("RepoDigests = %v, want %v", img.RepoDigests, want)
	}
	if img.Config.Config.User != "1000" || img.Annotations["org.example"] != "yes" || img.Size <= 0 {
		t.Errorf("config/annotations/size not recorded: %+v", img)
	}
	for _, q := range []string{ref, reg.addr() + "/team/app@" + p.manifest.String(), img.ID,
		strings.TrimPrefix(img.ID, "sha256:"), img.ID[:12], strings.TrimPrefix(img.ID, "sha256:")[:8]} {
		got, err := s.Resolve(q)
		if err != nil || got.ID != img.ID {
			t.Errorf("Resolve(%q) = %v, %v", q, got.ID, err)
		}
	}
	for _, q := range []string{reg.addr() + "/team/app:v2", "busybox", "sha256:0000"} {
		if _, err := s.Resolve(q); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) err = %v, want ErrNotFound", q, err)
		}
	}
	// overlay2/<chain>/{diff,link,lower} and l/<short> -> ../<chain>/diff
	chain := chainIDs([]digest.Digest{digest.FromBytes(baseLayer(t)), digest.FromBytes(app)})
	top := s.layerPath(chain[1])
	if b, err := os.ReadFile(filepath.Join(top, "diff/app/run")); err != nil || string(b) != "run" {
		t.Errorf("top layer content: %q %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(top, "lower")); string(b) != "l/"+shortID(chain[0]) {
		t.Errorf("lower = %q", b)
	}
	if target, err := os.Readlink(filepath.Join(s.layerDir, "l", shortID(chain[1]))); err != nil || target != "../"+chain[1].Encoded()+"/diff" {
		t.Errorf("short link = %q %v", target, err)
	}
	if got := s.ImageFsUsage(); got.UsedBytes == 0 || got.InodesUsed < 6 {
		t.Errorf("ImageFsUsage = %+v", got)
	}
}

// TestPullImageSize: Size counts the files of every layer and the config
// blob, so an image of directories only still has a size above 0, as the
// CRI requires.
func TestPullImageSize(t *testing.T) {
	reg := newFakeRegistry(t)
	s := newTestStore(t, t.TempDir())
	tests := []struct {
		name      string
		layers    [][]byte
		fileBytes int64
	}{
		{"directories only", [][]byte{buildTar(t, dir("etc"), dir("var"))}, 0},
		{"files in two layers", [][]byte{buildTar(t, dir("a"), file("a/x", "12345")), buildTar(t, file("y", "abc"))}, 8},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := reg.push("team/size", fmt.Sprint(i), testImage{layers: tt.layers})
			img, err := s.Pull(context.Background(), fmt.Sprintf("%s/team/size:%d", reg.addr(), i), nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.fileBytes + p.configSize; img.Size != want || want <= 0 {
				t.Errorf("Size = %d, want %d file bytes + %d config bytes", img.Size, tt.fileBytes, p.configSize)
			}
		})
	}
}

func TestPullBadReferenceAndMissing(t *testing.T) {
	reg := newFakeRegistry(t)
	s := newTestStore(t, t.TempDir())
	if _, err := s.Pull(context.Background(), "Bad Ref", nil); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("bad ref: %v", err)
	}
	_, err := s.Pull(context.Background(), reg.addr()+"/nope:v1", nil)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing image: %v", err)
	}
}

func TestConcurrentPullsShareLayers(t *testing.T) {
	reg := newFakeRegistry(t)
	base := baseLayer(t)
	a := reg.push("a", "v1", testImage{layers: [][]byte{base, buildTar(t, file("a", "a"))}, compression: []string{"gzip", "gzip"}})
	reg.push("b", "v1", testImage{layers: [][]byte{base, buildTar(t, file("b", "b"))}, compression: []string{"gzip", "gzip"}})
	reg.delay = 200 * time.Millisecond
	s := newTestStore(t, t.TempDir())
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i, ref := range []string{"a:v1", "b:v1", "a:v1", "b:v1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Pull(context.Background(), reg.addr()+"/"+ref, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pull %d: %v", i, err)
		}
	}
	if n := reg.gets(a.blobs[0]); n != 1 {
		t.Errorf("shared base blob fetched %d times, want 1", n)
	}
	if n := len(s.List()); n != 2 {
		t.Errorf("List has %d images, want 2", n)
	}
	// A layer already present is never downloaded again.
	if _, err := s.Pull(context.Background(), reg.addr()+"/a:v1", nil); err != nil {
		t.Fatal(err)
	}
	if n := reg.gets(a.blobs[1]); n != 1 {
		t.Errorf("present layer fetched %d times, want 1", n)
	}
}

func TestPullDigestMismatchLeavesNothing(t *testing.T) {
	reg := newFakeRegistry(t)
	p := reg.push("x", "v1", testImage{layers: [][]byte{baseLayer(t)}, compression: []string{"gzip"}})
	// Serve another (valid gzip tar) body under the same digest.
	reg.blobs[p.blobs[0]] = gzipBytes(t, buildTar(t, file("evil", "x")))
	s := newTestStore(t, t.TempDir())
	_, err := s.Pull(context.Background(), reg.addr()+"/x:v1", nil)
	if err == nil || !strings.Contains(err.Error(), p.blobs[0].String()) {
		t.Fatalf("err = %v, want one naming the layer", err)
	}
	if len(s.List()) != 0 || len(s.layers) != 0 || len(tempLeftovers(t, s)) != 0 {
		t.Errorf("partial state left: images %d layers %d temps %v", len(s.List()), len(s.layers), tempLeftovers(t, s))
	}
	if u := s.ImageFsUsage(); u.UsedBytes != 0 || u.InodesUsed != 0 {
		t.Errorf("usage = %+v after failed pull", u)
	}
}

func TestPullDiffIDMismatch(t *testing.T) {
	reg := newFakeRegistry(t)
	p := reg.push("x", "v1", testImage{layers: [][]byte{baseLayer(t)}, compression: []string{"gzip"}})
	// Same diff ID in the config, but the blob and manifest now carry another tar.
	other := gzipBytes(t, buildTar(t, file("other", "x")))
	delete(reg.blobs, p.blobs[0])
	d := reg.putBlob(other)
	m := reg.manifests["x:v1"]
	reg.putManifest("x", "v1", m.mediaType, []byte(strings.ReplaceAll(strings.ReplaceAll(string(m.data),
		p.blobs[0].String(), d.String()), `"size":`+strconv.Itoa(len(gzipBytes(t, baseLayer(t)))), `"size":`+strconv.Itoa(len(other)))))
	s := newTestStore(t, t.TempDir())
	_, err := s.Pull(context.Background(), reg.addr()+"/x:v1", nil)
	if err == nil || !strings.Contains(err.Error(), "diff ID mismatch") {
		t.Fatalf("err = %v, want diff ID mismatch", err)
	}
	if len(s.layers) != 0 || len(tempLeftovers(t, s)) != 0 {
		t.Errorf("partial state left")
	}
}

func TestPullStalledAborts(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("x", "v1", testImage{layers: [][]byte{baseLayer(t)}, compression: []string{"gzip"}})
	reg.stall = true
	s := newTestStore(t, t.TempDir(), func(c *Config) { c.ProgressTimeout = 300 * time.Millisecond })
	_, err := s.Pull(context.Background(), reg.addr()+"/x:v1", nil)
	if !errors.Is(err, errStalled) {
		t.Fatalf("err = %v, want stalled", err)
	}
	if len(tempLeftovers(t, s)) != 0 {
		t.Errorf("temp dirs left: %v", tempLeftovers(t, s))
	}
}

func TestPullManifestList(t *testing.T) {
	reg := newFakeRegistry(t)
	host := reg.push("m", "host", testImage{layers: [][]byte{baseLayer(t)}})
	other := reg.push("m", "other", testImage{layers: [][]byte{buildTar(t, file("other", "x"))}})
	arch := "arm64"
	if goruntime.GOARCH == "arm64" {
		arch = "amd64"
	}
	idx := reg.pushIndex("m", "multi", map[digest.Digest]ocispec.Platform{
		host.manifest:  {OS: "linux", Architecture: goruntime.GOARCH},
		other.manifest: {OS: "linux", Architecture: arch},
	})
	s := newTestStore(t, t.TempDir())
	img, err := s.Pull(context.Background(), reg.addr()+"/m:multi", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != host.config.String() {
		t.Errorf("picked %s, want the host's %s", img.ID, host.config)
	}
	if want := reg.addr() + "/m@" + idx.String(); !slices.Contains(img.RepoDigests, want) {
		t.Errorf("RepoDigests = %v, want the index digest %s", img.RepoDigests, want)
	}
	reg.pushIndex("m", "foreign", map[digest.Digest]ocispec.Platform{other.manifest: {OS: "linux", Architecture: arch}})
	if _, err := s.Pull(context.Background(), reg.addr()+"/m:foreign", nil); err == nil || !strings.Contains(err.Error(), "manifest list") {
		t.Errorf("no matching platform: err = %v", err)
	}
}

func TestPullByDigest(t *testing.T) {
	reg := newFakeRegistry(t)
	p := reg.push("x", "v1", testImage{layers: [][]byte{baseLayer(t)}})
	s := newTestStore(t, t.TempDir())
	ref := reg.addr() + "/x@" + p.manifest.String()
	img, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.RepoTags) != 0 || !slices.Equal(img.RepoDigests, []string{ref}) {
		t.Errorf("tags %v digests %v", img.RepoTags, img.RepoDigests)
	}
	wrong := reg.addr() + "/x@" + digest.FromString("nope").String()
	if _, err := s.Pull(context.Background(), wrong, nil); err == nil {
		t.Errorf("pull of an unknown digest succeeded")
	}
}

func TestTagMovesAndRemove(t *testing.T) {
	reg := newFakeRegistry(t)
	base := baseLayer(t)
	old := reg.push("x", "v1", testImage{layers: [][]byte{base, buildTar(t, file("old", "1"))}})
	root := t.TempDir()
	s := newTestStore(t, root)
	ctx := context.Background()
	ref := reg.addr() + "/x:v1"
	if _, err := s.Pull(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	newer := reg.push("x", "v1", testImage{layers: [][]byte{base, buildTar(t, file("new", "2"))}})
	if _, err := s.Pull(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	oldImg, err := s.Resolve(old.config.String())
	if err != nil || len(oldImg.RepoTags) != 0 {
		t.Fatalf("old image after tag moved: %+v %v", oldImg.RepoTags, err)
	}
	if got, _ := s.Resolve(ref); got.ID != newer.config.String() {
		t.Errorf("tag resolves to %s, want %s", got.ID, newer.config)
	}
	if n := len(s.List()); n != 2 {
		t.Errorf("List = %d images, want 2 (old stays, untagged)", n)
	}
	// The records survive a restart, with the tag on the newer image.
	s2 := newTestStore(t, root)
	if got, err := s2.Resolve(ref); err != nil || got.ID != newer.config.String() {
		t.Errorf("after restart: %v %v", got.ID, err)
	}
	if n := len(s2.List()); n != 2 {
		t.Errorf("after restart List = %d", n)
	}

	// A second tag: removing one tag keeps the image.
	if _, err := s2.Pull(ctx, reg.addr()+"/x:v1", nil); err != nil {
		t.Fatal(err)
	}
	reg.putManifest("x", "v2", ocispec.MediaTypeImageManifest, reg.manifests["x:v1"].data)
	if _, err := s2.Pull(ctx, reg.addr()+"/x:v2", nil); err != nil {
		t.Fatal(err)
	}
	if err := s2.Remove(ctx, reg.addr()+"/x:v1"); err != nil {
		t.Fatal(err)
	}
	img, err := s2.Resolve(newer.config.String())
	if err != nil || !slices.Equal(img.RepoTags, []string{reg.addr() + "/x:v2"}) {
		t.Fatalf("after untag: %v %v", img.RepoTags, err)
	}
	// Removing the old image by ID keeps the shared base layer.
	baseChain := digest.FromBytes(base)
	if err := s2.Remove(ctx, old.config.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s2.layerPath(baseChain)); err != nil {
		t.Errorf("shared base removed with the old image: %v", err)
	}
	// Removing the last tag removes the image and its layers.
	before := s2.ImageFsUsage()
	if err := s2.Remove(ctx, reg.addr()+"/x:v2"); err != nil {
		t.Fatal(err)
	}
	if len(s2.List()) != 0 {
		t.Errorf("images left: %v", s2.List())
	}
	if _, err := os.Stat(s2.layerPath(baseChain)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("base layer still there: %v", err)
	}
	if after := s2.ImageFsUsage(); after.UsedBytes != 0 || after.InodesUsed != 0 || before.UsedBytes == 0 {
		t.Errorf("usage before %+v after %+v", before, after)
	}
	if err := s2.Remove(ctx, reg.addr()+"/x:v2"); err != nil {
		t.Errorf("removing an absent image: %v", err)
	}
	if left := tempLeftovers(t, s2); len(left) != 0 {
		t.Errorf("temps left: %v", left)
	}
}

func TestNewRemovesLeftovers(t *testing.T) {
	root := t.TempDir()
	s := newTestStore(t, root)
	junk := filepath.Join(s.layerDir, tmpPrefix+"pull-123", "diff")
	if err := os.MkdirAll(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(junk, "half"), []byte("x"), 0o644)
	half := s.layerPath(digest.FromString("no metadata"))
	os.MkdirAll(filepath.Join(half, "diff"), 0o755)
	os.Symlink("../nothing/diff", filepath.Join(s.layerDir, "l", "DANGLING"))
	s = newTestStore(t, root)
	for _, p := range []string{filepath.Dir(junk), half, filepath.Join(s.layerDir, "l", "DANGLING")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived New: %v", p, err)
		}
	}
}

func TestPullMaliciousLayerDiscarded(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("evil", "v1", testImage{layers: [][]byte{baseLayer(t), buildTar(t, file("ok", "1"), symlink("s", "/"), file("s/etc/x", "pwned"))},
		compression: []string{"gzip", "gzip"}})
	s := newTestStore(t, t.TempDir(), func(c *Config) { c.MaxConcurrentDownloads = 1 })
	_, err := s.Pull(context.Background(), reg.addr()+"/evil:v1", nil)
	if !errors.Is(err, ErrUnsafeLayer) {
		t.Fatalf("err = %v, want ErrUnsafeLayer", err)
	}
	if len(s.List()) != 0 || len(tempLeftovers(t, s)) != 0 {
		t.Errorf("partial state: %d images, temps %v", len(s.List()), tempLeftovers(t, s))
	}
	if _, err := os.Stat("/etc/x"); err == nil {
		t.Errorf("escaped to /etc/x")
	}
}

func TestPullAuth(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("private", "v1", testImage{layers: [][]byte{baseLayer(t)}})
	reg.basicAuth = "alice:secret"
	authFile := filepath.Join(t.TempDir(), "auth.json")
	s := newTestStore(t, t.TempDir())
	ctx := context.Background()
	ref := reg.addr() + "/private:v1"
	if _, err := s.Pull(ctx, ref, nil); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("no credentials: err = %v, want ErrUnauthorized", err)
	}
	if _, err := s.Pull(ctx, ref, &Auth{Username: "alice", Password: "wrong"}); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong password: err = %v, want ErrUnauthorized", err)
	}
	if _, err := s.Pull(ctx, ref, &Auth{Username: "alice", Password: "secret"}); err != nil {
		t.Errorf("username/password: %v", err)
	}
	if _, err := s.Pull(ctx, ref, &Auth{Auth: base64.StdEncoding.EncodeToString([]byte("alice:secret"))}); err != nil {
		t.Errorf("auth field: %v", err)
	}
	if _, err := s.Pull(ctx, ref, &Auth{Auth: "!!notbase64"}); err == nil {
		t.Errorf("malformed auth accepted")
	}
	// The auth file serves pulls that bring no credentials.
	content := `{"auths":{"` + reg.addr() + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("alice:secret")) + `"}}}`
	if err := os.WriteFile(authFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := newTestStore(t, t.TempDir(), func(c *Config) { c.AuthFile = authFile })
	if _, err := s2.Pull(ctx, ref, nil); err != nil {
		t.Errorf("auth file: %v", err)
	}
}

func TestPullMirrorFromRegistriesConf(t *testing.T) {
	mirror := newFakeRegistry(t)
	mirror.push("team/app", "v1", testImage{layers: [][]byte{baseLayer(t)}})
	conf := filepath.Join(t.TempDir(), "registries.conf")
	// The upstream name never resolves (.invalid): only the mirror can serve it.
	content := "[[registry]]\nprefix = \"upstream.invalid\"\nlocation = \"upstream.invalid\"\n" +
		"[[registry.mirror]]\nlocation = \"" + mirror.addr() + "\"\ninsecure = true\n" +
		"[[registry]]\nlocation = \"blocked.invalid\"\nblocked = true\n"
	if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, t.TempDir(), func(c *Config) { c.RegistriesConfig = conf })
	img, err := s.Pull(context.Background(), "upstream.invalid/team/app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(img.RepoTags, []string{"upstream.invalid/team/app:v1"}) {
		t.Errorf("RepoTags = %v, want the name asked for", img.RepoTags)
	}
	if _, err := s.Pull(context.Background(), "blocked.invalid/x:v1", nil); err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Errorf("blocked registry: %v", err)
	}
}

func TestPullShortNameAlias(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("team/app", "v1", testImage{layers: [][]byte{baseLayer(t)}})
	conf := filepath.Join(t.TempDir(), "registries.conf")
	content := "[aliases]\n\"app\" = \"" + reg.addr() + "/team/app\"\n"
	if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, t.TempDir(), func(c *Config) { c.RegistriesConfig = conf })
	ctx := context.Background()
	img, err := s.Pull(ctx, "app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := reg.addr() + "/team/app:v1"; !slices.Equal(img.RepoTags, []string{want}) {
		t.Errorf("RepoTags = %v, want %s", img.RepoTags, want)
	}
	if got, err := s.Resolve("app:v1"); err != nil || got.ID != img.ID {
		t.Errorf("Resolve through the alias: %v %v", got.ID, err)
	}
	if err := s.Remove(ctx, "app:v1"); err != nil {
		t.Fatal(err)
	}
	if len(s.List()) != 0 {
		t.Errorf("Remove through the alias left %v", s.List())
	}
}

func TestNewRemovesOrphanLayers(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.push("x", "v1", testImage{layers: [][]byte{baseLayer(t), buildTar(t, file("top", "t"))}})
	root := t.TempDir()
	s := newTestStore(t, root)
	img, err := s.Pull(context.Background(), reg.addr()+"/x:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A pull killed after its layers were committed, before its record was.
	if err := os.Remove(s.recordPath(img.ID)); err != nil {
		t.Fatal(err)
	}
	s = newTestStore(t, root)
	if len(s.layers) != 0 || s.ImageFsUsage().UsedBytes != 0 {
		t.Errorf("orphan layers kept: %d, usage %+v", len(s.layers), s.ImageFsUsage())
	}
	if entries, _ := os.ReadDir(s.layerDir); len(entries) != 1 {
		t.Errorf("overlay2 holds %d entries, want only l/", len(entries))
	}
}

func TestPullDockerSchema2AndRefusesSchema1(t *testing.T) {
	reg := newFakeRegistry(t)
	p := reg.push("d", "v1", testImage{layers: [][]byte{baseLayer(t)}, compression: []string{"gzip"}, docker: true})
	s := newTestStore(t, t.TempDir())
	img, err := s.Pull(context.Background(), reg.addr()+"/d:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != p.config.String() {
		t.Errorf("ID %s, want %s", img.ID, p.config)
	}
	schema1 := `{"schemaVersion":1,"name":"d","tag":"old","architecture":"amd64","fsLayers":[],"history":[]}`
	reg.putManifest("d", "old", "application/vnd.docker.distribution.manifest.v1+json", []byte(schema1))
	if _, err := s.Pull(context.Background(), reg.addr()+"/d:old", nil); err == nil || !strings.Contains(err.Error(), "unsupported manifest media type") {
		t.Errorf("schema1: err = %v, want unsupported media type", err)
	}
}

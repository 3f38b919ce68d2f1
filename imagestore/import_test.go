package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	goruntime "runtime"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// archiveBlobs is an image's config and layers as an archive carries them.
type archiveBlobs struct {
	config []byte
	layers [][]byte
}

func newArchiveBlobs(t *testing.T, layers ...[]byte) archiveBlobs {
	t.Helper()
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH},
		RootFS: ocispec.RootFS{Type: "layers"}, Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh"}}}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return archiveBlobs{config: b, layers: layers}
}

func (a archiveBlobs) id() string { return digest.FromBytes(a.config).String() }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ociArchive lays out imgs as an OCI image layout tarball, each manifest
// carrying the annotations given for it.
func ociArchive(t *testing.T, imgs []archiveBlobs, ann []map[string]string, extra ...entry) []byte {
	t.Helper()
	entries := []entry{file(ocispec.ImageLayoutFile, `{"imageLayoutVersion":"1.0.0"}`), dir("blobs"), dir("blobs/sha256")}
	blob := func(b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		if !slices.ContainsFunc(entries, func(e entry) bool { return e.name == "blobs/sha256/"+d.Encoded() }) {
			entries = append(entries, file("blobs/sha256/"+d.Encoded(), string(b)))
		}
		return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
	}
	var index ocispec.Index
	index.SchemaVersion = 2
	for i, img := range imgs {
		m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
		m.Config = blob(img.config)
		m.Config.MediaType = ocispec.MediaTypeImageConfig
		for _, l := range img.layers {
			d := blob(l)
			d.MediaType = ocispec.MediaTypeImageLayer
			m.Layers = append(m.Layers, d)
		}
		md := blob([]byte(mustJSON(t, m)))
		md.MediaType = ocispec.MediaTypeImageManifest
		md.Annotations = ann[i]
		index.Manifests = append(index.Manifests, md)
	}
	entries = append(entries, file(ocispec.ImageIndexFile, mustJSON(t, index)))
	return buildTar(t, append(entries, extra...)...)
}

// dockerArchive is what `docker save` writes for imgs, each with its tags.
func dockerArchive(t *testing.T, imgs []archiveBlobs, tags [][]string) []byte {
	t.Helper()
	type item struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var entries []entry
	var items []item
	for i, img := range imgs {
		it := item{Config: digest.FromBytes(img.config).Encoded() + ".json", RepoTags: tags[i]}
		entries = append(entries, file(it.Config, string(img.config)))
		for _, l := range img.layers {
			name := digest.FromBytes(l).Encoded() + "/layer.tar"
			entries = append(entries, file(name, string(l)))
			it.Layers = append(it.Layers, name)
		}
		items = append(items, it)
	}
	entries = append(entries, file("manifest.json", mustJSON(t, items)))
	return buildTar(t, entries...)
}

func TestImportNamesImages(t *testing.T) {
	img := newArchiveBlobs(t, baseLayer(t), buildTar(t, file("hello", "world")))
	other := newArchiveBlobs(t, baseLayer(t))
	tests := []struct {
		name    string
		archive []byte
		given   string
		want    map[string]string // name → image ID
	}{
		{
			name: "oci, containerd name annotation",
			archive: ociArchive(t, []archiveBlobs{img},
				[]map[string]string{{containerdNameAnnotation: "registry.local/app:v1", ocispec.AnnotationRefName: "v1"}}),
			want: map[string]string{"registry.local/app:v1": img.id()},
		},
		{
			name:    "oci, ref.name that is a full reference",
			archive: ociArchive(t, []archiveBlobs{img}, []map[string]string{{ocispec.AnnotationRefName: "busybox:1.0"}}),
			want:    map[string]string{"docker.io/library/busybox:1.0": img.id()},
		},
		{
			name:    "oci, a tag only, named by the caller",
			archive: ociArchive(t, []archiveBlobs{img}, []map[string]string{{ocispec.AnnotationRefName: "latest"}}),
			given:   "registry.local/named:2",
			want:    map[string]string{"registry.local/named:2": img.id()},
		},
		{
			name: "docker archive, two images, two tags on one",
			archive: dockerArchive(t, []archiveBlobs{img, other},
				[][]string{{"app:1", "registry.local/app:1"}, {"base:3"}}),
			want: map[string]string{"docker.io/library/app:1": img.id(), "registry.local/app:1": img.id(),
				"docker.io/library/base:3": other.id()},
		},
		{
			name:    "gzip-compressed docker archive",
			archive: gzipBytes(t, dockerArchive(t, []archiveBlobs{other}, [][]string{{"zipped:1"}})),
			want:    map[string]string{"docker.io/library/zipped:1": other.id()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, t.TempDir())
			got, err := s.Import(context.Background(), bytes.NewReader(tt.archive), tt.given)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				t.Fatal("no images imported")
			}
			for name, id := range tt.want {
				img, err := s.Resolve(name)
				if err != nil {
					t.Fatalf("resolve %s: %v", name, err)
				}
				if img.ID != id {
					t.Errorf("%s is %s, want %s", name, img.ID, id)
				}
			}
			if left := tempLeftovers(t, s); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestImportRefusesBadArchives(t *testing.T) {
	img := newArchiveBlobs(t, baseLayer(t))
	twoImages := dockerArchive(t, []archiveBlobs{img, newArchiveBlobs(t, buildTar(t, file("x", "y")))}, [][]string{{"a:1"}, {"b:1"}})
	withLink := ociArchive(t, []archiveBlobs{img}, []map[string]string{{containerdNameAnnotation: "x/y:1"}},
		symlink("blobs/evil", "/etc/passwd"))
	unnamed := ociArchive(t, []archiveBlobs{img}, []map[string]string{{ocispec.AnnotationRefName: "latest"}})
	tests := []struct {
		name    string
		archive []byte
		given   string
	}{
		{name: "not a tarball", archive: []byte("definitely not a tar archive, not even close to one")},
		{name: "a tarball of neither kind", archive: buildTar(t, file("hello", "world"))},
		{name: "an image without a name", archive: unnamed},
		{name: "one name for two images", archive: twoImages, given: "c:1"},
		{name: "a symlink in an OCI layout", archive: withLink},
		{name: "an invalid name", archive: unnamed, given: "UPPER/case:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, t.TempDir())
			_, err := s.Import(context.Background(), bytes.NewReader(tt.archive), tt.given)
			if err == nil {
				t.Fatal("import succeeded")
			}
			if !errors.Is(err, ErrInvalidArchive) && !errors.Is(err, ErrInvalidReference) {
				t.Errorf("error %v is neither ErrInvalidArchive nor ErrInvalidReference", err)
			}
			if imgs := s.List(); len(imgs) != 0 {
				t.Errorf("images stored: %v", imgs)
			}
			if left := tempLeftovers(t, s); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

package framework

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The archive's two indexes (OCI index.json, docker manifest.json) must
// name the image and point at blobs that are there under their digests.
func TestWriteArchive(t *testing.T) {
	img := &Image{}
	img.AddLayer(Dir("etc", 0o755), File("etc/hello", "hello\n", 0o644))
	img.AddLayer(File("etc/second", "2\n", 0o644)).Compression = Zstd
	want, err := img.Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "img.tar")
	if err := WriteArchive(path, "example.test/app:v1", img); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, path)
	for name, body := range files {
		if hex, ok := cutBlob(name); ok && digest.FromBytes(body).Encoded() != hex {
			t.Errorf("%s holds a blob of another digest", name)
		}
	}
	if _, ok := files[ocispec.ImageLayoutFile]; !ok {
		t.Error("no oci-layout")
	}

	var index ocispec.Index
	mustUnmarshal(t, files["index.json"], &index)
	if len(index.Manifests) != 1 || index.Manifests[0].Digest.String() != want.Digest ||
		index.Manifests[0].Annotations[ocispec.AnnotationRefName] != "v1" {
		t.Errorf("index.json: %+v", index)
	}
	var docker []dockerManifestEntry
	mustUnmarshal(t, files["manifest.json"], &docker)
	if len(docker) != 1 || len(docker[0].RepoTags) != 1 || docker[0].RepoTags[0] != "example.test/app:v1" {
		t.Fatalf("manifest.json: %+v", docker)
	}
	if got := digest.FromBytes(files[docker[0].Config]).String(); got != want.ID {
		t.Errorf("manifest.json config %s, want %s", got, want.ID)
	}
	if len(docker[0].Layers) != len(want.Layers) {
		t.Fatalf("manifest.json has %d layers, want %d", len(docker[0].Layers), len(want.Layers))
	}
	for i, l := range docker[0].Layers {
		if _, ok := files[l]; !ok || digest.FromBytes(want.Layers[i]).Encoded() != filepath.Base(l) {
			t.Errorf("manifest.json layer %d: %s", i, l)
		}
	}
}

func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := out[hdr.Name]; dup {
			t.Errorf("%s twice in the archive", hdr.Name)
		}
		if out[hdr.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
}

func cutBlob(name string) (string, bool) {
	dir, hex := filepath.Split(name)
	return hex, dir == "blobs/sha256/" && hex != ""
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

func TestTagOf(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"example.test/app:v1", "v1"},
		{"localhost:5001/app", "latest"},
		{"localhost:5001/app:2", "2"},
		{"app", "latest"},
	} {
		if got := tagOf(tc.name); got != tc.want {
			t.Errorf("tagOf(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

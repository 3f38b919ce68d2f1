package framework

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteArchive writes img as an image archive named name (repo:tag), in
// the layout `docker save` has had since Docker 25: an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) that also carries the
// docker-archive manifest.json pointing at the same blobs, so that readers
// of either format take it (`ctr images import`, `kind load
// image-archive`, containers/image's docker-archive and oci-archive).
func WriteArchive(path, name string, img *Image) error {
	b, err := img.Build()
	if err != nil {
		return fmt.Errorf("build %s: %w", name, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := b.writeArchive(f, name); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// dockerManifestEntry is one image of a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// archiveFile is one regular file of an image archive.
type archiveFile struct {
	name string
	body []byte
}

func (b *Built) writeArchive(w io.Writer, name string) error {
	tw := tar.NewWriter(w)
	blobPath := func(blob []byte) string { return "blobs/sha256/" + digest.FromBytes(blob).Encoded() }
	dm := dockerManifestEntry{Config: blobPath(b.Config), RepoTags: []string{name}}
	for _, l := range b.Layers {
		dm.Layers = append(dm.Layers, blobPath(l))
	}
	docker, err := json.Marshal([]dockerManifestEntry{dm})
	if err != nil {
		return err
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType: b.ManifestMediaType,
			Digest:    digest.Digest(b.Digest),
			Size:      int64(len(b.Manifest)),
			// containerd reads the full name, containers/image the tag.
			Annotations: map[string]string{
				"io.containerd.image.name": name,
				ocispec.AnnotationRefName:  tagOf(name),
			},
		}},
	})
	if err != nil {
		return err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	files := []archiveFile{
		{ocispec.ImageLayoutFile, layout},
		{"index.json", index},
		{"manifest.json", docker},
		{blobPath(b.Manifest), b.Manifest},
		{blobPath(b.Config), b.Config},
	}
	for _, l := range b.Layers {
		files = append(files, archiveFile{blobPath(l), l})
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: layerTime}); err != nil {
			return err
		}
	}
	written := map[string]bool{}
	for _, f := range files {
		if written[f.name] { // an image may repeat a layer
			continue
		}
		written[f.name] = true
		hdr := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body)), ModTime: layerTime}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	return tw.Close()
}

// tagOf is the tag of name (repo:tag), "latest" when it has none.
func tagOf(name string) string {
	for i := len(name) - 1; i >= 0 && name[i] != '/'; i-- {
		if name[i] == ':' {
			return name[i+1:]
		}
	}
	return "latest"
}

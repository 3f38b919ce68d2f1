package framework

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteOCIArchive writes b as an OCI image layout tarball at path, the
// image named name the way containerd's exports name it (its full name in
// io.containerd.image.name, its tag in org.opencontainers.image.ref.name).
func (b *Built) WriteOCIArchive(path, name, tag string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, body []byte) error {
		hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: layerTime}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	blobs := append([][]byte{b.Config, b.Manifest}, b.Layers...)
	for _, blob := range blobs {
		if err := add("blobs/sha256/"+digest.FromBytes(blob).Encoded(), blob); err != nil {
			return err
		}
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType: b.ManifestMediaType, Digest: digest.Digest(b.Digest), Size: int64(len(b.Manifest)),
			Annotations: map[string]string{"io.containerd.image.name": name, ocispec.AnnotationRefName: tag},
		}},
	})
	if err != nil {
		return err
	}
	if err := add(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := add(ocispec.ImageIndexFile, index); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write OCI archive: %w", err)
	}
	return nil
}

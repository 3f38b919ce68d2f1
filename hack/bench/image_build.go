package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blob is one content-addressed file of an image.
type blob struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diffID,omitempty"` // layers: digest of the uncompressed tar
	Size      int64  `json:"size"`
	Unpacked  int64  `json:"unpacked,omitempty"` // layers: bytes of file content
	MediaType string `json:"mediaType"`
	Path      string `json:"path"`
}

// builtImage is an image written to disk, ready to push.
type builtImage struct {
	Config       blob   `json:"config"`
	Layers       []blob `json:"layers"`
	Manifest     []byte `json:"manifest"`
	ManifestType string `json:"manifestType"`
}

// UnpackedSize is the sum of the file contents of every layer.
func (img *builtImage) UnpackedSize() int64 {
	var n int64
	for _, l := range img.Layers {
		n += l.Unpacked
	}
	return n
}

// fixedTime keeps synthesized entries, and so their digests, reproducible.
var fixedTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// layerWriter streams one tar+gzip layer to a file, hashing both forms.
type layerWriter struct {
	path     string
	f        *os.File
	gz       *gzip.Writer
	tw       *tar.Writer
	compHash hash.Hash
	diffHash hash.Hash
	comp     countWriter
	unpacked int64
	dirs     map[string]bool   // directories already in this layer
	links    map[uint64]string // inode → first path in this layer (hard links)
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func newLayerWriter(p string) (*layerWriter, error) {
	f, err := os.Create(p)
	if err != nil {
		return nil, fmt.Errorf("create layer: %w", err)
	}
	w := &layerWriter{path: p, f: f, compHash: sha256.New(), diffHash: sha256.New(),
		dirs: map[string]bool{}, links: map[uint64]string{}}
	w.gz = gzip.NewWriter(io.MultiWriter(f, w.compHash, &w.comp))
	w.tw = tar.NewWriter(io.MultiWriter(w.gz, w.diffHash))
	return w, nil
}

func (w *layerWriter) header(h *tar.Header) error {
	h.Uname, h.Gname = "", ""
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	h.Format = tar.FormatPAX
	if err := w.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("layer %s: write %s: %w", w.path, h.Name, err)
	}
	return nil
}

// addDir adds a directory, once.
func (w *layerWriter) addDir(name string, mode int64) error {
	if w.dirs[name] {
		return nil
	}
	w.dirs[name] = true
	return w.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: fixedTime})
}

func (w *layerWriter) addFile(name string, mode int64, data []byte) error {
	if err := w.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: fixedTime}); err != nil {
		return err
	}
	w.unpacked += int64(len(data))
	_, err := w.tw.Write(data)
	return err
}

func (w *layerWriter) addSymlink(name, target string) error {
	return w.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: fixedTime})
}

// addFromDisk adds root/rel as it is on disk (regular file, directory or
// symlink), after the parent directories this layer does not have yet.
func (w *layerWriter) addFromDisk(root, rel string) error {
	if err := w.addParents(root, rel); err != nil {
		return err
	}
	full := filepath.Join(root, rel)
	fi, err := os.Lstat(full)
	if err != nil {
		return err
	}
	if fi.IsDir() && w.dirs[rel] {
		return nil
	}
	var link string
	if fi.Mode()&os.ModeSymlink != 0 {
		if link, err = os.Readlink(full); err != nil {
			return err
		}
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("tar header for %s: %w", full, err)
	}
	h.Name = rel
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st != nil {
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
	}
	switch {
	case fi.IsDir():
		h.Name += "/"
		w.dirs[rel] = true
		return w.header(h)
	case fi.Mode().IsRegular() && st != nil && st.Nlink > 1:
		if first, ok := w.links[st.Ino]; ok {
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			return w.header(h)
		}
		w.links[st.Ino] = rel
	}
	if err := w.header(h); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w.tw, f)
	w.unpacked += n
	if err != nil {
		return fmt.Errorf("layer %s: copy %s: %w", w.path, full, err)
	}
	return nil
}

func (w *layerWriter) addParents(root, rel string) error {
	dir := path.Dir(rel)
	if dir == "." || w.dirs[dir] {
		return nil
	}
	if err := w.addParents(root, dir); err != nil {
		return err
	}
	return w.addFromDisk(root, dir)
}

// close finishes the layer and renames it to its digest in dir.
func (w *layerWriter) close(dir string) (blob, error) {
	err := w.tw.Close()
	if err == nil {
		err = w.gz.Close()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return blob{}, fmt.Errorf("finish layer %s: %w", w.path, err)
	}
	b := blob{
		Digest:    "sha256:" + hex.EncodeToString(w.compHash.Sum(nil)),
		DiffID:    "sha256:" + hex.EncodeToString(w.diffHash.Sum(nil)),
		Size:      w.comp.n,
		Unpacked:  w.unpacked,
		MediaType: ocispec.MediaTypeImageLayerGzip,
	}
	b.Path = filepath.Join(dir, strings.TrimPrefix(b.Digest, "sha256:"))
	if err := os.Rename(w.path, b.Path); err != nil {
		return blob{}, err
	}
	return b, nil
}

// writeBlob stores data under its digest in dir.
func writeBlob(dir, mediaType string, data []byte) (blob, error) {
	d := digest.FromBytes(data)
	p := filepath.Join(dir, d.Encoded())
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return blob{}, fmt.Errorf("write blob: %w", err)
	}
	return blob{Digest: d.String(), Size: int64(len(data)), MediaType: mediaType, Path: p}, nil
}

// assemble writes the config and manifest of an image made of layers.
func assemble(dir string, cfg ocispec.ImageConfig, layers []blob) (*builtImage, error) {
	img := ocispec.Image{
		Created:  &fixedTime,
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	descs := make([]ocispec.Descriptor, 0, len(layers))
	for _, l := range layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, digest.Digest(l.DiffID))
		descs = append(descs, ocispec.Descriptor{MediaType: l.MediaType, Digest: digest.Digest(l.Digest), Size: l.Size})
	}
	cfgJSON, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	cb, err := writeBlob(dir, ocispec.MediaTypeImageConfig, cfgJSON)
	if err != nil {
		return nil, err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: cb.MediaType, Digest: digest.Digest(cb.Digest), Size: cb.Size},
		Layers:    descs,
	}
	mJSON, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &builtImage{Config: cb, Layers: layers, Manifest: mJSON, ManifestType: ocispec.MediaTypeImageManifest}, nil
}

// cachedImage returns the image recorded in dir/image.json, or builds it
// with build and records it. A half-built image is never recorded.
func cachedImage(dir string, build func(blobDir string) (*builtImage, error)) (*builtImage, error) {
	record := filepath.Join(dir, "image.json")
	if data, err := os.ReadFile(record); err == nil {
		var img builtImage
		if err := json.Unmarshal(data, &img); err == nil && img.blobsPresent() {
			return &img, nil
		}
	}
	blobDir := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return nil, err
	}
	img, err := build(blobDir)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	tmp := record + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return nil, err
	}
	return img, os.Rename(tmp, record)
}

func (img *builtImage) blobsPresent() bool {
	for _, b := range append([]blob{img.Config}, img.Layers...) {
		if fi, err := os.Stat(b.Path); err != nil || fi.Size() != b.Size {
			return false
		}
	}
	return true
}

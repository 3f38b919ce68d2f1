package framework

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression of a layer blob.
const (
	Gzip         = "gzip"
	Zstd         = "zstd"
	Uncompressed = "none"
)

// layerTime keeps builds reproducible: the same image has the same ID.
var layerTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one tar entry of a layer.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg, TypeDir, TypeSymlink, TypeLink, TypeChar, TypeFifo...
	Mode     int64
	Body     []byte
	Linkname string
	UID, GID int
	Major    int64
	Minor    int64
	Xattrs   map[string]string
}

// File is a regular file entry.
func File(name, body string, mode int64) Entry {
	return Entry{Name: name, Type: tar.TypeReg, Mode: mode, Body: []byte(body)}
}

// Dir is a directory entry.
func Dir(name string, mode int64) Entry { return Entry{Name: name, Type: tar.TypeDir, Mode: mode} }

// Symlink is a symbolic link entry.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Linkname: target}
}

// Hardlink is a hard link to an earlier entry of the same layer. mode is
// the target's, as tar writers record it: containerd and Docker apply a
// hard link entry's mode to the inode it shares with its target.
func Hardlink(name, target string, mode int64) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Mode: mode, Linkname: target}
}

// Whiteout deletes name from the layers below.
func Whiteout(name string) Entry {
	dir, base := splitPath(name)
	return File(dir+".wh."+base, "", 0o644)
}

// OpaqueWhiteout hides everything below dir in the layers below.
func OpaqueWhiteout(dir string) Entry {
	return File(strings.TrimSuffix(dir, "/")+"/.wh..wh..opq", "", 0o644)
}

func splitPath(p string) (dir, base string) {
	i := strings.LastIndex(p, "/")
	return p[:i+1], p[i+1:]
}

// Layer is a list of entries and how its blob is compressed.
type Layer struct {
	Entries     []Entry
	Compression string // Gzip when empty
}

// Image is a test image: its config and its layers, bottom first.
type Image struct {
	Config      ocispec.ImageConfig
	Layers      []*Layer
	Platform    ocispec.Platform
	Annotations map[string]string
}

// AddLayer appends a gzip layer holding entries and returns it.
func (img *Image) AddLayer(entries ...Entry) *Layer {
	l := &Layer{Entries: entries}
	img.Layers = append(img.Layers, l)
	return l
}

// Built is an image's registry form.
type Built struct {
	Manifest          []byte
	ManifestMediaType string
	Config            []byte
	Layers            [][]byte // blobs, in manifest order
	DiffIDs           []digest.Digest
	ID                string // sha256:<config digest>, the image ID the CRI reports
	Digest            string // manifest digest
}

// Build serializes img as an OCI image.
func (img *Image) Build() (*Built, error) {
	b := &Built{ManifestMediaType: ocispec.MediaTypeImageManifest}
	var descs []ocispec.Descriptor
	for i, l := range img.Layers {
		raw, err := l.tar()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		blob, mediaType, err := compress(raw, l.Compression)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		b.Layers = append(b.Layers, blob)
		b.DiffIDs = append(b.DiffIDs, digest.FromBytes(raw))
		descs = append(descs, ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob), Size: int64(len(blob))})
	}
	cfg, err := json.Marshal(ocispec.Image{
		Created:  &layerTime,
		Platform: img.platform(),
		Config:   img.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: b.DiffIDs},
	})
	if err != nil {
		return nil, err
	}
	b.Config = cfg
	b.ID = digest.FromBytes(cfg).String()
	b.Manifest, err = json.Marshal(ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers:      descs,
		Annotations: img.Annotations,
	})
	if err != nil {
		return nil, err
	}
	b.Digest = digest.FromBytes(b.Manifest).String()
	return b, nil
}

func (img *Image) platform() ocispec.Platform {
	p := img.Platform
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	return p
}

func (l *Layer) tar() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range l.Entries {
		hdr := &tar.Header{
			Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Linkname,
			Uid: e.UID, Gid: e.GID, Devmajor: e.Major, Devminor: e.Minor,
			ModTime: layerTime, Format: tar.FormatPAX,
		}
		if e.Type == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if len(e.Xattrs) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				hdr.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
		if hdr.Size > 0 {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func compress(raw []byte, how string) ([]byte, string, error) {
	var buf bytes.Buffer
	switch how {
	case "", Gzip:
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(raw); err != nil {
			return nil, "", err
		}
		if err := zw.Close(); err != nil {
			return nil, "", err
		}
		return buf.Bytes(), ocispec.MediaTypeImageLayerGzip, nil
	case Zstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			return nil, "", err
		}
		if _, err := zw.Write(raw); err != nil {
			return nil, "", err
		}
		if err := zw.Close(); err != nil {
			return nil, "", err
		}
		return buf.Bytes(), ocispec.MediaTypeImageLayerZstd, nil
	case Uncompressed:
		return raw, ocispec.MediaTypeImageLayer, nil
	}
	return nil, "", fmt.Errorf("unknown compression %q", how)
}

// Users in BusyboxImage's /etc/passwd and /etc/group.
const (
	passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group  = "root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n"
)

// BusyboxImage is a one-layer image of Debian's static busybox with every
// applet linked in /bin, users root, app (1000, also in wheel) and nobody,
// and /www/index.html for httpd.
func BusyboxImage(t testing.TB) *Image {
	t.Helper()
	img, err := HostBusyboxImage()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// HostBusyboxImage is BusyboxImage for callers without a test (TestMain).
func HostBusyboxImage() (*Image, error) {
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox-static: %w", err)
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	return BusyboxImageOf(bin, strings.Fields(string(out)), false), nil
}

// BusyboxImageOf is BusyboxImage for any busybox binary and its applets:
// symbolic links to bin/busybox, or hard links as upstream busybox images
// have them (there, masking one applet's path leaves the others working).
func BusyboxImageOf(bin []byte, applets []string, hardlinks bool) *Image {
	entries := []Entry{
		Dir("bin", 0o755), Dir("etc", 0o755), Dir("root", 0o700), Dir("tmp", 0o1777),
		Dir("home", 0o755), {Name: "home/app", Type: tar.TypeDir, Mode: 0o755, UID: 1000, GID: 1000},
		Dir("proc", 0o555), Dir("sys", 0o555), Dir("dev", 0o755), Dir("var", 0o755), Dir("www", 0o755),
		{Name: "bin/busybox", Type: tar.TypeReg, Mode: 0o755, Body: bin},
		File("etc/passwd", passwd, 0o644), File("etc/group", group, 0o644),
		File("www/index.html", "hello from busybox\n", 0o644),
	}
	for _, name := range applets {
		switch {
		case name == "busybox":
		case hardlinks:
			entries = append(entries, Hardlink("bin/"+name, "bin/busybox", 0o755))
		default:
			entries = append(entries, Symlink("bin/"+name, "busybox"))
		}
	}
	img := &Image{Config: ocispec.ImageConfig{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"sh"},
	}}
	img.AddLayer(entries...)
	return img
}

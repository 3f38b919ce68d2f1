package imagestore

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// entry is one tar entry of a test layer.
type entry struct {
	name     string
	typ      byte
	body     string
	link     string
	mode     int64
	uid, gid int
	xattrs   map[string]string
	major    int64
	minor    int64
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hardlink(name, target string) entry { return entry{name: name, typ: tar.TypeLink, link: target} }

var testTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func buildTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, ModTime: testTime, Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if len(e.xattrs) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				hdr.PAXRecords[paxXattrPrefix+k] = v
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.EncodeAll(b, nil)
}

// fakeRegistry is a minimal Docker registry v2 on loopback: enough for the
// docker transport to ping, fetch manifests and fetch blobs.
type fakeRegistry struct {
	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	manifests map[string]served // "<repo>:<tag or digest>"
	blobs     map[digest.Digest][]byte
	blobGets  map[digest.Digest]int
	delay     time.Duration // before serving each blob
	stall     bool          // blobs send half, then hang
	basicAuth string        // "user:pass" required when set
}

type served struct {
	mediaType string
	data      []byte
}

func newFakeRegistry(t testing.TB) *fakeRegistry {
	r := &fakeRegistry{t: t, manifests: map[string]served{}, blobs: map[digest.Digest][]byte{}, blobGets: map[digest.Digest]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *fakeRegistry) addr() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func (r *fakeRegistry) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	need := r.basicAuth
	r.mu.Unlock()
	if need != "" {
		u, p, ok := req.BasicAuth()
		if !ok || u+":"+p != need {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
	}
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == "" || p == "/v2" || req.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if i := strings.LastIndex(p, "/manifests/"); i >= 0 {
		r.mu.Lock()
		m, ok := r.manifests[p[:i]+":"+p[i+len("/manifests/"):]]
		r.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", m.mediaType)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(m.data).String())
		w.Write(m.data)
		return
	}
	if i := strings.LastIndex(p, "/blobs/"); i >= 0 {
		d := digest.Digest(p[i+len("/blobs/"):])
		r.mu.Lock()
		b, ok := r.blobs[d]
		r.blobGets[d]++
		delay, stall := r.delay, r.stall
		r.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`, http.StatusNotFound)
			return
		}
		time.Sleep(delay)
		if stall {
			w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			<-req.Context().Done()
			return
		}
		w.Write(b)
		return
	}
	http.NotFound(w, req)
}

func (r *fakeRegistry) gets(d digest.Digest) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGets[d]
}

func (r *fakeRegistry) putBlob(b []byte) digest.Digest {
	d := digest.FromBytes(b)
	r.mu.Lock()
	r.blobs[d] = b
	r.mu.Unlock()
	return d
}

func (r *fakeRegistry) putManifest(repo, ref, mediaType string, data []byte) digest.Digest {
	d := digest.FromBytes(data)
	r.mu.Lock()
	r.manifests[repo+":"+ref] = served{mediaType, data}
	r.manifests[repo+":"+d.String()] = served{mediaType, data}
	r.mu.Unlock()
	return d
}

// testImage describes an image to push: uncompressed layer tars and how
// each is compressed ("gzip", "zstd", "").
type testImage struct {
	layers      [][]byte
	compression []string
	config      ocispec.ImageConfig
	docker      bool // a Docker schema2 manifest instead of OCI
}

type pushed struct {
	manifest   digest.Digest
	config     digest.Digest
	configSize int64
	blobs      []digest.Digest
}

// push stores img under repo:tag as an OCI manifest and returns digests.
func (r *fakeRegistry) push(repo, tag string, img testImage) pushed {
	var p pushed
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}, Config: img.config,
		RootFS: ocispec.RootFS{Type: "layers"}}
	var descs []ocispec.Descriptor
	for i, l := range img.layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
		blob, mt := l, ocispec.MediaTypeImageLayer
		if i < len(img.compression) {
			switch img.compression[i] {
			case "gzip":
				blob, mt = gzipBytes(r.t, l), ocispec.MediaTypeImageLayerGzip
			case "zstd":
				blob, mt = zstdBytes(r.t, l), ocispec.MediaTypeImageLayerZstd
			}
		}
		d := r.putBlob(blob)
		p.blobs = append(p.blobs, d)
		descs = append(descs, ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(blob))})
	}
	cfgBlob, _ := json.Marshal(cfg)
	p.config, p.configSize = r.putBlob(cfgBlob), int64(len(cfgBlob))
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: p.config, Size: int64(len(cfgBlob))},
		Layers: descs, Annotations: map[string]string{"org.example": "yes"}}
	mt := ocispec.MediaTypeImageManifest
	if img.docker {
		// Docker schema2: same shape, Docker media types.
		mt = "application/vnd.docker.distribution.manifest.v2+json"
		m.MediaType, m.Annotations = mt, nil
		m.Config.MediaType = "application/vnd.docker.container.image.v1+json"
		for i := range m.Layers {
			m.Layers[i].MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip"
		}
	}
	mb, _ := json.Marshal(m)
	p.manifest = r.putManifest(repo, tag, mt, mb)
	return p
}

// pushIndex stores an OCI index over the given manifests and platforms.
func (r *fakeRegistry) pushIndex(repo, tag string, entries map[digest.Digest]ocispec.Platform) digest.Digest {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for d, p := range entries {
		r.mu.Lock()
		size := len(r.manifests[repo+":"+d.String()].data)
		r.mu.Unlock()
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(size), Platform: &p})
	}
	b, _ := json.Marshal(idx)
	return r.putManifest(repo, tag, ocispec.MediaTypeImageIndex, b)
}

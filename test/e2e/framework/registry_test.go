package framework

import (
	"net/http"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPushServesManifestAndBlobs(t *testing.T) {
	reg := StartRegistry(t)
	img := BusyboxImage(t)
	img.AddLayer(File("etc/motd", "hi\n", 0o644)).Compression = Zstd
	dgst := reg.Push(t, "e2e/busybox", "v1", img)
	b, err := img.Build()
	if err != nil {
		t.Fatal(err)
	}
	if dgst != b.Digest {
		t.Errorf("Push returned %s, Build says %s", dgst, b.Digest)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+reg.Addr+"/v2/e2e/busybox/manifests/v1", nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Errorf("GET manifest: %s digest %q, want 200 %s", resp.Status, resp.Header.Get("Docker-Content-Digest"), dgst)
	}
	resp, err = http.Head("http://" + reg.Addr + "/v2/e2e/busybox/blobs/" + b.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("config blob %s: %s", b.ID, resp.Status)
	}
}

package framework

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// Registry is Debian's docker-registry serving plain HTTP on loopback.
type Registry struct {
	Addr string // 127.0.0.1:<port>
	Dir  string

	user, password string // basic auth, when set
}

// RegistryOption changes how StartRegistry sets a registry up.
type RegistryOption func(*Registry)

// WithBasicAuth makes the registry demand user and password (htpasswd).
func WithBasicAuth(user, password string) RegistryOption {
	return func(r *Registry) { r.user, r.password = user, password }
}

const registryConfig = `version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`

const registryAuthConfig = `auth:
  htpasswd:
    realm: criserver-e2e
    path: %s
`

// StartRegistry starts a registry for the test; cleanup stops it.
func StartRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Addr: addr, Dir: dir}
	for _, o := range opts {
		o(r)
	}
	config := fmt.Appendf(nil, registryConfig, filepath.Join(dir, "data"), addr)
	if r.user != "" {
		htpasswd, err := r.writeHtpasswd()
		if err != nil {
			t.Fatal(err)
		}
		config = fmt.Appendf(config, registryAuthConfig, htpasswd)
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, config, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("docker-registry", "serve", cfg)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := r.waitReady(); err != nil {
		t.Fatalf("registry: %v\n%s", err, out.String())
	}
	return r
}

// writeHtpasswd writes the one user's bcrypt entry, the only hash the
// registry's htpasswd backend accepts.
func (r *Registry) writeHtpasswd() (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(r.password), bcrypt.MinCost)
	if err != nil {
		return "", err
	}
	path := filepath.Join(r.Dir, "htpasswd")
	return path, os.WriteFile(path, fmt.Appendf(nil, "%s:%s\n", r.user, hash), 0o600)
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (r *Registry) waitReady() error {
	serving := Poll(20*time.Second, func() bool {
		resp, err := http.Get("http://" + r.Addr + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
	})
	if !serving {
		return fmt.Errorf("not serving on %s after 20s", r.Addr)
	}
	return nil
}

// Ref is the pull reference of repo:tag on this registry.
func (r *Registry) Ref(repo, tag string) string { return r.Addr + "/" + repo + ":" + tag }

// Push uploads img as repo:tag and returns the manifest digest.
func (r *Registry) Push(t testing.TB, repo, tag string, img *Image) string {
	t.Helper()
	b, err := img.Build()
	if err != nil {
		t.Fatalf("build image: %v", err)
	}
	for _, blob := range append([][]byte{b.Config}, b.Layers...) {
		if err := r.PushBlob(repo, blob); err != nil {
			t.Fatalf("push %s: %v", repo, err)
		}
	}
	dgst, err := r.PushManifest(repo, tag, b.ManifestMediaType, b.Manifest)
	if err != nil {
		t.Fatalf("push %s:%s: %v", repo, tag, err)
	}
	return dgst
}

// PushBlob uploads one blob with a monolithic upload.
func (r *Registry) PushBlob(repo string, blob []byte) error {
	dgst := digest.FromBytes(blob)
	base := "http://" + r.Addr
	resp, err := r.do(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("upload location: %w", err)
	}
	loc = (&url.URL{Scheme: "http", Host: r.Addr}).ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", dgst.String())
	loc.RawQuery = q.Encode()
	return r.put(loc.String(), "application/octet-stream", blob)
}

// PushManifest uploads a manifest (or index) under ref (a tag or digest)
// and returns its digest.
func (r *Registry) PushManifest(repo, ref, mediaType string, manifest []byte) (string, error) {
	u := "http://" + r.Addr + "/v2/" + repo + "/manifests/" + ref
	if err := r.put(u, mediaType, manifest); err != nil {
		return "", err
	}
	return digest.FromBytes(manifest).String(), nil
}

// do sends one request, with the registry's credentials when it has some.
func (r *Registry) do(method, u, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.password)
	}
	return http.DefaultClient.Do(req)
}

func (r *Registry) put(u, contentType string, body []byte) error {
	resp, err := r.do(http.MethodPut, u, contentType, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("PUT %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

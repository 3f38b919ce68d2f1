package imagestore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/types"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/fault"
)

// maxConfigSize bounds the image config blob read into memory.
const maxConfigSize = 16 << 20

// Pull fetches ref from its registry, stores its layers and records the
// image under ref's tag and under the digest of what was pulled.
func (s *Store) Pull(ctx context.Context, ref string, auth *Auth) (Image, error) {
	r, err := s.normalize(ref)
	if err != nil {
		return Image{}, err
	}
	img, err := s.pull(ctx, r, auth)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", r, classifyRegistryError(err))
	}
	return img, nil
}

func (s *Store) pull(ctx context.Context, r imageRef, auth *Auth) (Image, error) {
	start := time.Now()
	sys, err := s.systemContext(r, auth)
	if err != nil {
		return Image{}, err
	}
	fr, err := r.fetchRef()
	if err != nil {
		return Image{}, err
	}
	iref, err := docker.NewReference(fr)
	if err != nil {
		return Image{}, err
	}
	src, err := iref.NewImageSource(ctx, sys)
	if err != nil {
		return Image{}, err
	}
	defer src.Close()
	img, err := s.copyImage(ctx, src, sys, r)
	if err != nil {
		return Image{}, err
	}
	klog.InfoS("Pulled image", "ref", r.String(), "id", img.ID, "duration", time.Since(start))
	return img, nil
}

// copyImage stores the image src offers for this host under r's names:
// manifest, config and every missing layer, then the record.
func (s *Store) copyImage(ctx context.Context, src types.ImageSource, sys *types.SystemContext, r imageRef) (Image, error) {
	m, topDigest, err := s.fetchManifest(ctx, src, sys, r)
	if err != nil {
		return Image{}, err
	}
	cfg, cfgDigest, err := s.fetchConfig(ctx, src, m)
	if err != nil {
		return Image{}, err
	}
	layers := m.LayerInfos()
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return Image{}, fmt.Errorf("manifest lists %d layers but config %d diff IDs", len(layers), len(cfg.RootFS.DiffIDs))
	}
	chain := chainIDs(cfg.RootFS.DiffIDs)
	s.hold(chain)
	defer s.release(chain)
	if err := s.fetchLayers(ctx, src, layers, cfg.RootFS.DiffIDs, chain); err != nil {
		return Image{}, err
	}
	return s.commitImage(r, topDigest, imageConfig{cfg, cfgDigest, m.ConfigInfo().Size}, chain, manifestAnnotations(m))
}

// systemContext maps the store config and the pull's credentials onto
// containers/image settings.
func (s *Store) systemContext(r imageRef, auth *Auth) (*types.SystemContext, error) {
	sys := s.registriesContext()
	sys.OSChoice = "linux"
	sys.ArchitectureChoice = goruntime.GOARCH
	sys.AuthFilePath = s.cfg.AuthFile
	sys.DockerRegistryUserAgent = "criserver"
	if isLoopbackRegistry(r.domain()) {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	if auth == nil {
		return sys, nil
	}
	user, pass := auth.Username, auth.Password
	if auth.Auth != "" {
		dec, err := base64.StdEncoding.DecodeString(auth.Auth)
		if err != nil {
			return nil, fmt.Errorf("decode auth: %w", err)
		}
		var ok bool
		if user, pass, ok = strings.Cut(string(dec), ":"); !ok {
			return nil, errors.New("decode auth: not user:password")
		}
	}
	if user != "" || auth.IdentityToken != "" {
		sys.DockerAuthConfig = &types.DockerAuthConfig{Username: user, Password: pass, IdentityToken: auth.IdentityToken}
	}
	sys.DockerBearerRegistryToken = auth.RegistryToken
	return sys, nil
}

// fetchManifest returns the image manifest for this host, choosing from a
// manifest list, and the digest of the top-level manifest (what the
// reference names, and what the image's repo digest records).
func (s *Store) fetchManifest(ctx context.Context, src types.ImageSource, sys *types.SystemContext, r imageRef) (manifest.Manifest, digest.Digest, error) {
	// Manifests are small: a fetch taking the whole progress timeout has stalled.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProgressTimeout)
	defer cancel()
	blob, mt, err := src.GetManifest(ctx, nil)
	if err != nil {
		return nil, "", fmt.Errorf("fetch manifest: %w", err)
	}
	top, err := manifest.Digest(blob)
	if err != nil {
		return nil, "", err
	}
	if r.digest != "" && top != r.digest {
		return nil, "", fmt.Errorf("manifest digest %s does not match %s", top, r.digest)
	}
	mt = manifest.NormalizedMIMEType(mt)
	if manifest.MIMETypeIsMultiImage(mt) {
		list, err := manifest.ListFromBlob(blob, mt)
		if err != nil {
			return nil, "", fmt.Errorf("parse manifest list: %w", err)
		}
		inst, err := list.ChooseInstance(sys)
		if err != nil {
			return nil, "", fmt.Errorf("manifest list: %w", err)
		}
		if blob, mt, err = src.GetManifest(ctx, &inst); err != nil {
			return nil, "", fmt.Errorf("fetch manifest %s: %w", inst, err)
		}
		if ok, _ := manifest.MatchesDigest(blob, inst); !ok {
			return nil, "", fmt.Errorf("manifest does not match its digest %s", inst)
		}
		mt = manifest.NormalizedMIMEType(mt)
	}
	switch mt {
	case manifest.DockerV2Schema2MediaType, ocispec.MediaTypeImageManifest:
	default:
		return nil, "", fmt.Errorf("unsupported manifest media type %q", mt)
	}
	m, err := manifest.FromBlob(blob, mt)
	if err != nil {
		return nil, "", fmt.Errorf("parse manifest: %w", err)
	}
	return m, top, nil
}

func (s *Store) fetchConfig(ctx context.Context, src types.ImageSource, m manifest.Manifest) (ocispec.Image, digest.Digest, error) {
	info := m.ConfigInfo()
	var cfg ocispec.Image
	if err := info.Digest.Validate(); err != nil {
		return cfg, "", fmt.Errorf("config digest: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(s.cfg.ProgressTimeout, cancel, info)
	defer wd.stop()
	rc, _, err := src.GetBlob(ctx, info, none.NoCache)
	if err != nil {
		return cfg, "", fmt.Errorf("fetch config %s: %w", info.Digest, wd.explain(ctx, err))
	}
	defer rc.Close()
	wd.r = rc
	blob, err := io.ReadAll(io.LimitReader(wd, maxConfigSize+1))
	if err != nil {
		return cfg, "", fmt.Errorf("fetch config %s: %w", info.Digest, wd.explain(ctx, err))
	}
	if len(blob) > maxConfigSize {
		return cfg, "", fmt.Errorf("config %s: larger than %d bytes", info.Digest, maxConfigSize)
	}
	if got := info.Digest.Algorithm().FromBytes(blob); got != info.Digest {
		return cfg, "", fmt.Errorf("config %s: digest mismatch, got %s", info.Digest, got)
	}
	if err := json.Unmarshal(blob, &cfg); err != nil {
		return cfg, "", fmt.Errorf("config %s: %w", info.Digest, err)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return cfg, "", fmt.Errorf("config %s: diff ID: %w", info.Digest, err)
		}
	}
	return cfg, info.Digest, nil
}

func manifestAnnotations(m manifest.Manifest) map[string]string {
	if o, ok := m.(*manifest.OCI1); ok && len(o.Annotations) > 0 {
		return maps.Clone(o.Annotations)
	}
	return nil
}

// hold keeps layers from removal while a pull that uses them runs.
func (s *Store) hold(chain []digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range chain {
		s.held[c]++
	}
}

func (s *Store) release(chain []digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range chain {
		if s.held[c]--; s.held[c] <= 0 {
			delete(s.held, c)
		}
	}
}

// fetchLayers makes every layer present, at most MaxConcurrentDownloads at
// once; the first failure cancels the rest.
func (s *Store) fetchLayers(ctx context.Context, src types.ImageSource, infos []manifest.LayerInfo, diffIDs, chain []digest.Digest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.cfg.MaxConcurrentDownloads)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for i := range infos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			err := s.ensureLayer(ctx, chain[:i+1], func(ctx context.Context) (*layer, error) {
				return s.fetchLayer(ctx, src, infos[i].BlobInfo, diffIDs[i], chain[:i+1])
			})
			if err != nil {
				once.Do(func() { firstErr = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// imageConfig is an image's config blob, parsed.
type imageConfig struct {
	ocispec.Image
	digest digest.Digest
	size   int64 // of the blob, as the manifest gives it
}

// commitImage writes the image record and moves its names to it; an image
// that loses its last name stays listed, untagged, as containerd keeps it.
func (s *Store) commitImage(r imageRef, top digest.Digest, cfg imageConfig, chain []digest.Digest, ann map[string]string) (Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if missing := s.missingLayer(chain); missing != "" {
		return Image{}, fmt.Errorf("layer %s vanished during the pull", missing)
	}
	id := cfg.digest.String()
	rec, ok := s.images[id]
	if !ok {
		rec = &record{Image: Image{ID: id, Config: cfg.Image, Annotations: ann}, Layers: chain}
	}
	updated := *rec
	updated.RepoTags = slices.Clone(rec.RepoTags)
	updated.RepoDigests = slices.Clone(rec.RepoDigests)
	updated.Pulled = time.Now()
	// The layers' file bytes, and the config the record keeps: the CRI
	// wants a size above 0 even for an image of directories only.
	updated.Size = max(cfg.size, 0)
	for _, c := range chain {
		updated.Size += s.layers[c].usage.Bytes
	}
	names := []string{r.repoDigestFor(top)}
	if t := r.repoTag(); t != "" {
		names = append(names, t)
	}
	for _, n := range names {
		if strings.Contains(n, "@") {
			if !slices.Contains(updated.RepoDigests, n) {
				updated.RepoDigests = append(updated.RepoDigests, n)
			}
		} else if !slices.Contains(updated.RepoTags, n) {
			updated.RepoTags = append(updated.RepoTags, n)
		}
	}
	fault.Crash("image.pull.before-record")
	if err := s.writeRecord(&updated); err != nil {
		return Image{}, err
	}
	*rec = updated
	s.images[id] = rec
	for _, n := range names {
		if old, ok := s.names[n]; ok && old != id {
			oldRec := s.images[old]
			s.dropName(oldRec, n)
			if err := s.writeRecord(oldRec); err != nil {
				klog.ErrorS(err, "Failed to untag previous image; it is fixed at next start", "image", old, "name", n)
			}
		}
		s.names[n] = id
	}
	return s.export(rec), nil
}

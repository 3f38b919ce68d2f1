package imagestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/atomicfile"
)

// ErrNotFound is returned when no image matches a reference.
var ErrNotFound = errors.New("image not found")

// Auth is the registry credential a pull carries (the CRI AuthConfig).
type Auth struct {
	Username, Password, Auth, IdentityToken, RegistryToken string
}

// Image is what the store knows of one pulled image.
type Image struct {
	// ID is sha256:<digest of the image config>.
	ID          string   `json:"id"`
	RepoTags    []string `json:"repoTags"`
	RepoDigests []string `json:"repoDigests"`
	// Size is the bytes of the files in the image's layers plus the
	// size of its config blob.
	Size        int64             `json:"size"`
	Config      ocispec.Image     `json:"config"`
	Pinned      bool              `json:"pinned"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// record is an image as kept on disk under images/<id-hex>.json.
type record struct {
	Image
	// Layers are the chain IDs of the image's layers, base first.
	Layers []digest.Digest `json:"layers"`
	// Pulled orders records when a crash left one tag on two images.
	Pulled time.Time `json:"pulled"`
}

// Store keeps images, their layers and container writable layers under
// <root>/images and <root>/overlay2.
type Store struct {
	cfg      Config
	layerDir string
	imageDir string
	pinned   map[string]bool // normalized pinned references

	mu       sync.Mutex
	images   map[string]*record       // by ID
	names    map[string]string        // repo tag or repo digest → ID
	layers   map[digest.Digest]*layer // committed layers by chain ID
	held     map[digest.Digest]int    // layers referenced by pulls in progress
	rootfs   map[string]*rootfs       // container writable layers by container ID
	inflight map[digest.Digest]*flight
	usage    usageTotals

	trash trash // removed writable layers being deleted
}

// New opens the store under root, creating its directories, removing what
// a crash left half-done, and loading the image records.
func New(ctx context.Context, cfg Config, root string) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:      cfg,
		layerDir: filepath.Join(root, "overlay2"),
		imageDir: filepath.Join(root, "images"),
		pinned:   map[string]bool{},
		images:   map[string]*record{},
		names:    map[string]string{},
		layers:   map[digest.Digest]*layer{},
		held:     map[digest.Digest]int{},
		rootfs:   map[string]*rootfs{},
		inflight: map[digest.Digest]*flight{},
	}
	for _, p := range cfg.PinnedImages {
		r, err := s.normalize(p)
		if err != nil {
			return nil, fmt.Errorf("pinned_images: %w", err)
		}
		s.pinned[r.String()] = true
	}
	for _, d := range []string{s.imageDir, s.layerDir, filepath.Join(s.layerDir, linkDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	// Root of a user namespace (another host uid) must reach the rootfs
	// under overlay2/<container>; traversing is all it can do there.
	if err := os.Chmod(s.layerDir, 0o711); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", s.layerDir, err)
	}
	// Only placement depends on it: a store on another file system works the same.
	if err := markTopDir(s.layerDir); errors.Is(err, errNoTopDir) {
		klog.V(2).InfoS("Layer directories are not spread over block groups", "reason", err.Error())
	} else if err != nil {
		klog.ErrorS(err, "Failed to spread layer directories over block groups; pulls after removals may be slower")
	}
	if err := s.loadLayers(); err != nil {
		return nil, err
	}
	if err := s.loadImages(); err != nil {
		return nil, err
	}
	if err := s.loadRootfs(ctx); err != nil {
		return nil, err
	}
	if err := s.removeOrphanLayers(); err != nil {
		return nil, err
	}
	klog.InfoS("Image store loaded", "root", root, "images", len(s.images), "layers", len(s.layers), "rootfs", len(s.rootfs))
	return s, nil
}

// removeOrphanLayers deletes layers no image or container uses: those of a
// pull killed after some layers were committed but before its record was.
func (s *Store) removeOrphanLayers() error {
	all := make([]digest.Digest, 0, len(s.layers))
	for l := range s.layers {
		all = append(all, l)
	}
	doomed := s.detachUnusedLocked(all)
	if len(doomed) > 0 {
		klog.InfoS("Removing layers no image uses", "count", len(doomed))
	}
	return removeDirs(doomed)
}

func (s *Store) recordPath(id string) string {
	return filepath.Join(s.imageDir, strings.TrimPrefix(id, "sha256:")+".json")
}

// loadImages reads every record; a record whose layers are gone (a crash
// between layer removal and record removal cannot cause this, but a
// hand-edited root can) is dropped rather than served.
func (s *Store) loadImages() error {
	if err := atomicfile.RemoveTemps(s.imageDir); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(s.imageDir, "*.json"))
	if err != nil {
		return err
	}
	var recs []*record
	for _, f := range files {
		rec := &record{}
		if err := atomicfile.ReadJSON(f, rec); err != nil {
			return fmt.Errorf("load image record: %w", err)
		}
		if missing := s.missingLayer(rec.Layers); missing != "" {
			klog.InfoS("Dropping image record whose layer is gone", "image", rec.ID, "layer", missing)
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("drop image record %s: %w", f, err)
			}
			continue
		}
		recs = append(recs, rec)
	}
	// Oldest first, so that a name a crash left on two records goes to the newer.
	slices.SortFunc(recs, func(a, b *record) int { return a.Pulled.Compare(b.Pulled) })
	for _, rec := range recs {
		s.images[rec.ID] = rec
		for _, n := range s.recordNames(rec) {
			if old, ok := s.names[n]; ok && old != rec.ID {
				s.dropName(s.images[old], n)
				if err := s.writeRecord(s.images[old]); err != nil {
					return err
				}
			}
			s.names[n] = rec.ID
		}
	}
	return nil
}

func (s *Store) missingLayer(layers []digest.Digest) digest.Digest {
	for _, l := range layers {
		if _, ok := s.layers[l]; !ok {
			return l
		}
	}
	return ""
}

func (s *Store) recordNames(rec *record) []string {
	return append(slices.Clone(rec.RepoTags), rec.RepoDigests...)
}

// dropName removes n from rec's tags and digests.
func (s *Store) dropName(rec *record, n string) {
	rec.RepoTags = slices.DeleteFunc(rec.RepoTags, func(t string) bool { return t == n })
	rec.RepoDigests = slices.DeleteFunc(rec.RepoDigests, func(t string) bool { return t == n })
}

func (s *Store) writeRecord(rec *record) error {
	if err := atomicfile.WriteJSON(s.recordPath(rec.ID), rec); err != nil {
		return fmt.Errorf("write image record %s: %w", rec.ID, err)
	}
	return nil
}

// Resolve finds the image named by ref: a full image ID, a name with tag
// and/or digest (an untagged name means :latest), or a unique ID prefix.
func (s *Store) Resolve(ref string) (Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.resolveLocked(ref)
	if err != nil {
		return Image{}, err
	}
	return s.export(rec), nil
}

func (s *Store) resolveLocked(ref string) (*record, error) {
	if h := normalizeID(ref); len(h) == 64 {
		if rec, ok := s.images["sha256:"+h]; ok {
			return rec, nil
		}
	}
	r, perr := s.normalize(ref)
	if perr == nil {
		if rec := s.lookupName(r); rec != nil {
			return rec, nil
		}
	}
	if h := normalizeID(ref); h != "" {
		var found *record
		for id, rec := range s.images {
			if strings.HasPrefix(id, "sha256:"+h) {
				if found != nil {
					return nil, fmt.Errorf("%w: ID prefix %q is ambiguous", ErrNotFound, ref)
				}
				found = rec
			}
		}
		if found != nil {
			return found, nil
		}
		return nil, fmt.Errorf("%w: %q", ErrNotFound, ref)
	}
	if perr != nil {
		return nil, perr
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, r.String())
}

// lookupName matches the digest when the reference has one, else the tag.
func (s *Store) lookupName(r imageRef) *record {
	key := r.repoTag()
	if r.digest != "" {
		key = r.repoDigestFor(r.digest)
	}
	if id, ok := s.names[key]; ok {
		return s.images[id]
	}
	return nil
}

// List returns every image, tagged or not.
func (s *Store) List() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Image, 0, len(s.images))
	for _, rec := range s.images {
		out = append(out, s.export(rec))
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// export copies rec so callers cannot race with later updates.
func (s *Store) export(rec *record) Image {
	img := rec.Image
	img.RepoTags = slices.Clone(rec.RepoTags)
	img.RepoDigests = slices.Clone(rec.RepoDigests)
	img.Pinned = false
	for _, n := range s.recordNames(rec) {
		if s.pinned[n] {
			img.Pinned = true
		}
	}
	return img
}

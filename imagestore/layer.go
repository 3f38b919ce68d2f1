package imagestore

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/atomicfile"
)

const (
	// linkDir holds the short symlinks (l/<short> -> ../<layer>/diff) that
	// keep overlay mount options under a page, as Docker's overlay2 does.
	linkDir = "l"
	// tmpPrefix marks directories that do not count as present: layers being
	// unpacked and layers being deleted. New removes them.
	tmpPrefix = "tmp-"
	usageFile = "usage.json"
)

// layer is one committed, unpacked layer, keyed by its chain ID.
type layer struct {
	chainID digest.Digest
	short   string
	usage   layerUsage
}

// Usage is the disk usage of a tree of files.
type Usage struct {
	Bytes  int64 `json:"bytes"`
	Inodes int64 `json:"inodes"`
}

// layerUsage is counted while unpacking so that ImageFsInfo never walks.
type layerUsage = Usage

// chainIDs computes the OCI chain ID of every layer from the diff IDs:
// ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
func chainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// shortID derives the layer's link name from its chain ID. Deriving it
// (rather than drawing it at random) lets a layer's lower file be written
// before its parents are committed, so layers unpack in parallel.
func shortID(chainID digest.Digest) string {
	sum := sha256.Sum256([]byte("criserver-link:" + chainID.String()))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16])
}

func (s *Store) layerPath(chainID digest.Digest) string {
	return filepath.Join(s.layerDir, chainID.Encoded())
}

// lowerFor is the colon-separated list of short links of chain[0..n-1],
// nearest parent first, relative to the overlay2 directory.
func lowerFor(chain []digest.Digest) string {
	parts := make([]string, 0, len(chain))
	for i := len(chain) - 1; i >= 0; i-- {
		parts = append(parts, linkDir+"/"+shortID(chain[i]))
	}
	return strings.Join(parts, ":")
}

// loadLayers indexes committed layers and removes what a crash left:
// temp dirs, dangling short links, and dirs that are neither a layer nor a
// container's writable layer.
func (s *Store) loadLayers() error {
	entries, err := os.ReadDir(s.layerDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.layerDir, err)
	}
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(s.layerDir, name)
		switch {
		case name == linkDir:
			continue
		case strings.HasPrefix(name, tmpPrefix):
			klog.InfoS("Removing leftover temporary layer directory", "path", p)
			if err := removeDetached(p); err != nil {
				return fmt.Errorf("remove leftover %s: %w", p, err)
			}
			continue
		}
		if _, err := os.Stat(filepath.Join(p, rootfsFile)); err == nil {
			continue // a container writable layer: loadRootfs
		}
		l, err := readLayer(p, name)
		if err != nil {
			klog.InfoS("Removing unrecognized layer directory", "path", p, "reason", err.Error())
			// Not mounted is the usual case; RemoveAll reports what matters.
			_ = unix.Unmount(filepath.Join(p, "merged"), unix.MNT_DETACH)
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("remove %s: %w", p, err)
			}
			continue
		}
		if err := s.ensureLink(l); err != nil {
			return err
		}
		s.layers[l.chainID] = l
		s.usage.addLayer(l.usage)
	}
	return s.removeDanglingLinks()
}

func readLayer(dir, name string) (*layer, error) {
	chainID := digest.NewDigestFromEncoded(digest.SHA256, name)
	if err := chainID.Validate(); err != nil {
		return nil, err
	}
	l := &layer{chainID: chainID, short: shortID(chainID)}
	if err := atomicfile.ReadJSON(filepath.Join(dir, usageFile), &l.usage); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Join(dir, "diff")); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("no diff directory")
	}
	return l, nil
}

func (s *Store) ensureLink(l *layer) error {
	link := filepath.Join(s.layerDir, linkDir, l.short)
	target := filepath.Join("..", l.chainID.Encoded(), "diff")
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("link layer %s: %w", l.chainID, err)
	}
	return nil
}

func (s *Store) removeDanglingLinks() error {
	dir := filepath.Join(s.layerDir, linkDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			os.Remove(p)
		}
	}
	return nil
}

// newTempLayerDir makes a directory that does not count as a layer until
// commitLayer renames it.
func (s *Store) newTempLayerDir() (string, error) {
	dir, err := os.MkdirTemp(s.layerDir, tmpPrefix+"pull-")
	if err != nil {
		return "", fmt.Errorf("create temp layer dir: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "diff"), 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("create temp layer dir: %w", err)
	}
	return dir, nil
}

// commitLayer writes the metadata of the unpacked layer in tmp and renames
// it into place: the rename is the instant the layer starts to exist. The
// files of diff/ are not fsynced one by one (that would dominate pull time);
// a kill -9 loses nothing the page cache holds.
func (s *Store) commitLayer(tmp string, chain []digest.Digest, u layerUsage) (*layer, error) {
	chainID := chain[len(chain)-1]
	l := &layer{chainID: chainID, short: shortID(chainID), usage: u}
	files := map[string]string{"link": l.short}
	if len(chain) > 1 {
		files["lower"] = lowerFor(chain[:len(chain)-1])
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("commit layer %s: %w", chainID, err)
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(tmp, usageFile), u); err != nil {
		return nil, fmt.Errorf("commit layer %s: %w", chainID, err)
	}
	if err := os.Rename(tmp, s.layerPath(chainID)); err != nil {
		return nil, fmt.Errorf("commit layer %s: %w", chainID, err)
	}
	if err := atomicfile.SyncDir(s.layerDir); err != nil {
		return nil, err
	}
	if err := s.ensureLink(l); err != nil {
		return nil, err
	}
	return l, nil
}

// unusedLayersLocked returns the layers of rec that no other image, no
// container and no pull in progress uses.
func (s *Store) unusedLayersLocked(candidates []digest.Digest) []digest.Digest {
	used := map[digest.Digest]bool{}
	for _, rec := range s.images {
		for _, l := range rec.Layers {
			used[l] = true
		}
	}
	for _, r := range s.rootfs {
		for _, l := range r.allLayers() {
			used[l] = true
		}
	}
	var out []digest.Digest
	for _, l := range candidates {
		if !used[l] && s.held[l] == 0 && s.layers[l] != nil {
			out = append(out, l)
		}
	}
	return out
}

// detachLayerLocked makes the layer absent (rename to a temp name) and
// returns the directory the caller deletes outside the lock.
func (s *Store) detachLayerLocked(chainID digest.Digest) (string, error) {
	l := s.layers[chainID]
	gone := filepath.Join(s.layerDir, fmt.Sprintf("%sdel-%s-%d", tmpPrefix, chainID.Encoded(), time.Now().UnixNano()))
	if err := os.Rename(s.layerPath(chainID), gone); err != nil {
		return "", fmt.Errorf("remove layer %s: %w", chainID, err)
	}
	delete(s.layers, chainID)
	s.usage.removeLayer(l.usage)
	os.Remove(filepath.Join(s.layerDir, linkDir, l.short))
	return gone, nil
}

package imagestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/criserver/criserver/atomicfile"
	"github.com/criserver/criserver/imagestore/overlay"
)

// ErrNotStore is returned for a root that holds no criserver store.
var ErrNotStore = errors.New("not a criserver store")

// View is a read-only snapshot of a store's records for tools that run
// beside the daemon, or without it. It never creates, repairs or removes
// anything and takes no lock: every record is replaced by rename, so each
// one it reads is whole, and what the daemon removes while a tool runs is
// reported as gone.
type View struct {
	layerDir string
	root     string
	images   []*record // by ID
	layers   map[digest.Digest]bool
	rootfs   map[string]*rootfs // by container ID
}

// OpenView reads the records of the store under root.
func OpenView(root string) (*View, error) {
	v := &View{
		root:     root,
		layerDir: filepath.Join(root, "overlay2"),
		layers:   map[digest.Digest]bool{},
		rootfs:   map[string]*rootfs{},
	}
	for _, d := range []string{filepath.Join(v.layerDir, linkDir), filepath.Join(root, "images")} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s is %w: no directory %s", root, ErrNotStore, d)
		}
	}
	if err := v.readLayerDir(); err != nil {
		return nil, err
	}
	if err := v.readImages(filepath.Join(root, "images")); err != nil {
		return nil, err
	}
	return v, nil
}

// readLayerDir indexes committed layers and writable layers; what is
// neither (temp dirs, a half-removed layer) is left for the daemon.
func (v *View) readLayerDir() error {
	entries, err := os.ReadDir(v.layerDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == linkDir || strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		p := filepath.Join(v.layerDir, name)
		r := &rootfs{}
		err := atomicfile.ReadJSON(filepath.Join(p, rootfsFile), r)
		switch {
		case err == nil:
			v.rootfs[r.ContainerID] = r
		case errors.Is(err, os.ErrNotExist):
			if l, err := readLayer(p, name); err == nil {
				v.layers[l.chainID] = true
			}
		default:
			return fmt.Errorf("read writable layer record: %w", err)
		}
	}
	return nil
}

func (v *View) readImages(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	slices.Sort(files)
	for _, f := range files {
		rec := &record{}
		if err := atomicfile.ReadJSON(f, rec); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed meanwhile
			}
			return fmt.Errorf("read image record: %w", err)
		}
		v.images = append(v.images, rec)
	}
	return nil
}

// ContainerIDs lists the containers that have a writable layer, sorted.
func (v *View) ContainerIDs() []string {
	ids := make([]string, 0, len(v.rootfs))
	for id := range v.rootfs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// ResolveContainer finds the container with a writable layer whose ID is
// ref or starts with it.
func (v *View) ResolveContainer(ref string) (string, error) {
	if ref == "" {
		return "", errors.New("empty container ID")
	}
	if _, ok := v.rootfs[ref]; ok {
		return ref, nil
	}
	var found []string
	for id := range v.rootfs {
		if strings.HasPrefix(id, ref) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no container with ID or ID prefix %q has a writable layer in %s", ref, v.root)
	case 1:
		return found[0], nil
	default:
		slices.Sort(found)
		return "", fmt.Errorf("container ID prefix %q is ambiguous: %s", ref, strings.Join(found, ", "))
	}
}

// Diff lists what container cid has added, changed and deleted relative
// to its image's layers, sorted by path.
func (v *View) Diff(ctx context.Context, cid string) ([]overlay.Change, error) {
	r, ok := v.rootfs[cid]
	if !ok {
		return nil, fmt.Errorf("container %s has no writable layer in %s", cid, v.root)
	}
	lowers := make([]string, 0, len(r.Layers))
	for i := len(r.Layers) - 1; i >= 0; i-- {
		d := filepath.Join(v.layerDir, r.Layers[i].Encoded(), "diff")
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("layer %s of container %s: %w", r.Layers[i], cid, err)
		}
		lowers = append(lowers, d)
	}
	upper := filepath.Join(v.layerDir, cid, "diff")
	changes, err := overlay.Changes(ctx, upper, lowers)
	if _, serr := os.Stat(upper); errors.Is(serr, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s was removed", cid)
	}
	if err != nil {
		return nil, fmt.Errorf("changes of container %s: %w", cid, err)
	}
	return changes, nil
}

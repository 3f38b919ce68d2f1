package imagestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"k8s.io/klog/v2"
)

// Remove deletes what ref names. A tag removes that tag, and the image with
// it when it was the last tag; a digest or an ID removes the image. Layers
// go when no image, container or pull uses them. Removing what is absent
// succeeds.
func (s *Store) Remove(ctx context.Context, ref string) error {
	s.mu.Lock()
	rec, err := s.resolveLocked(ref)
	if errors.Is(err, ErrNotFound) {
		s.mu.Unlock()
		return nil
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	doomed, err := s.removeLocked(rec, ref)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return removeDirs(doomed)
}

func (s *Store) removeLocked(rec *record, ref string) ([]string, error) {
	if r, err := s.normalize(ref); err == nil && r.digest == "" && s.names[r.repoTag()] == rec.ID && len(rec.RepoTags) > 1 {
		s.dropName(rec, r.repoTag())
		if err := s.writeRecord(rec); err != nil {
			return nil, err
		}
		delete(s.names, r.repoTag())
		klog.InfoS("Untagged image", "image", rec.ID, "tag", r.repoTag())
		return nil, nil
	}
	if err := os.Remove(s.recordPath(rec.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, n := range s.recordNames(rec) {
		if s.names[n] == rec.ID {
			delete(s.names, n)
		}
	}
	delete(s.images, rec.ID)
	klog.InfoS("Removed image", "image", rec.ID, "ref", ref)
	return s.detachUnusedLocked(rec.Layers), nil
}

// detachUnusedLocked detaches the candidates nothing uses any more and
// returns their directories for deletion outside the lock.
func (s *Store) detachUnusedLocked(candidates []digest.Digest) []string {
	var dirs []string
	for _, l := range s.unusedLayersLocked(candidates) {
		dir, err := s.detachLayerLocked(l)
		if err != nil {
			klog.ErrorS(err, "Failed to remove unused layer; it stays until the image is pulled and removed again", "layer", l)
			continue
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

// removeDirs deletes detached directories; they already count as absent,
// and start-up removes any a failure leaves.
func removeDirs(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		if err := removeDetached(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeDetached deletes one detached directory. A container's writable
// layer goes to the trash still mounted (see RemoveRootfs): its overlay
// comes off first, so that deleting cannot reach through it.
func removeDetached(dir string) error {
	if err := unmount(filepath.Join(dir, "merged")); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

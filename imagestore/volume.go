package imagestore

import (
	"errors"
	"path/filepath"
	"strconv"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

const (
	// volumesDir holds a container's image volume mounts, one directory
	// per volume named by its index: overlay2/<cid>/volumes/<n>.
	volumesDir = "volumes"
	// volumeBottom is an empty directory under the layers of a one-layer
	// image: overlay without an upper directory needs two lower ones.
	volumeBottom = "bottom"
)

// imageVolume is an image mounted read-only for one of a container's
// image volumes (CRI Mount.image).
type imageVolume struct {
	ImageID string          `json:"imageID"`
	Layers  []digest.Digest `json:"layers"`
}

// allLayers lists the layers r holds: its image's and its volumes'.
func (r *rootfs) allLayers() []digest.Digest {
	out := append([]digest.Digest(nil), r.Layers...)
	for _, v := range r.Volumes {
		out = append(out, v.Layers...)
	}
	return out
}

func (s *Store) volumePath(cid string, i int) string {
	return filepath.Join(s.rootfsPath(cid), volumesDir, strconv.Itoa(i))
}

// mountVolume mounts the image of volume i: an overlay of its layers with
// no upper directory, which the kernel makes read-only, mounted read-only
// as well.
func (s *Store) mountVolume(r *rootfs, i int, v imageVolume) (string, error) {
	cid := r.ContainerID
	target := s.volumePath(cid, i)
	if r.UserNS != nil {
		if err := s.mountIDMappedOverlay(cid, target, v.Layers, r.UserNS, false, unix.MS_RDONLY); err != nil {
			return "", err
		}
		return target, nil
	}
	lower := lowerFor(v.Layers)
	if len(v.Layers) == 1 {
		lower += ":" + filepath.Join(cid, volumesDir, volumeBottom)
	}
	if err := s.mountOverlay(target, "lowerdir="+lower, unix.MS_RDONLY); err != nil {
		return "", err
	}
	return target, nil
}

// unmountAll unmounts a container's image volumes and its rootfs; what is
// not mounted is skipped.
func (s *Store) unmountAll(r *rootfs) error {
	return errors.Join(s.unmountVolumes(r), unmount(filepath.Join(s.rootfsPath(r.ContainerID), "merged")))
}

// unmountVolumes unmounts a container's image volumes and removes its
// id-mapped layer mounts, leaving its writable overlay.
func (s *Store) unmountVolumes(r *rootfs) error {
	var errs []error
	for i := range r.Volumes {
		errs = append(errs, unmount(s.volumePath(r.ContainerID, i)))
	}
	errs = append(errs, s.removeIDMapDirs(r.ContainerID))
	return errors.Join(errs...)
}

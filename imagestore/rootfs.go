package imagestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/atomicfile"
	"github.com/criserver/criserver/fault"
)

const (
	rootfsFile = "rootfs.json"
	// maxMountOptions is the kernel's limit on mount(2) data: one page.
	maxMountOptions = 4096
)

// rootfs is a container's writable layer: overlay2/<cid>/{diff,work,merged}
// over the layers of its image. Its layers stay while it exists, even if
// the image is removed.
type rootfs struct {
	ContainerID string          `json:"containerID"`
	ImageID     string          `json:"imageID"`
	Layers      []digest.Digest `json:"layers"`
	// Volumes are the images mounted read-only for the container's image
	// volumes, in the order asked; their layers stay while it exists.
	Volumes []imageVolume `json:"volumes,omitempty"`
	// UserNS is the user namespace the layers are id-mapped into; nil for
	// the host's.
	UserNS *UserNS `json:"userns,omitempty"`

	usage   layerUsage
	usageAt time.Time
}

func (s *Store) rootfsPath(cid string) string { return filepath.Join(s.layerDir, cid) }

func validContainerID(cid string) error {
	if cid == "" || len(cid) > 128 || cid == linkDir || strings.HasPrefix(cid, tmpPrefix) ||
		strings.ContainsAny(cid, "/\x00") || cid == "." || cid == ".." {
		return fmt.Errorf("invalid container ID %q", cid)
	}
	return nil
}

// RootfsOptions is what a container's rootfs holds besides its image.
type RootfsOptions struct {
	// VolumeImages name the images (references or IDs) to mount read-only
	// for the container's image volumes.
	VolumeImages []string
	// UserNS, when set, id-maps the rootfs and the volumes into that user
	// namespace.
	UserNS *UserNS
}

// Mounted is a container's mounted rootfs.
type Mounted struct {
	// Path is the merged directory, the container's root.
	Path string
	// Volumes are the mounted roots of RootfsOptions.VolumeImages, in order.
	Volumes []string
	// VolumeImageIDs are the IDs the volume images resolved to, in order.
	VolumeImageIDs []string
}

// CreateRootfs creates and mounts the writable layer of a container over
// the layers of imageID, and the image volumes opts asks for.
func (s *Store) CreateRootfs(ctx context.Context, containerID, imageID string, opts RootfsOptions) (Mounted, error) {
	if err := validContainerID(containerID); err != nil {
		return Mounted{}, err
	}
	s.mu.Lock()
	if r, ok := s.rootfs[containerID]; ok {
		s.mu.Unlock()
		if r.ImageID != imageID && !strings.HasPrefix(r.ImageID, "sha256:"+imageID) {
			return Mounted{}, fmt.Errorf("rootfs of container %s already exists for image %s", containerID, r.ImageID)
		}
		return s.MountRootfs(ctx, containerID)
	}
	r, err := s.newRootfsLocked(containerID, imageID, opts)
	if err != nil {
		s.mu.Unlock()
		return Mounted{}, fmt.Errorf("create rootfs for %s: %w", containerID, err)
	}
	s.rootfs[containerID] = r // holds the layers from here on
	s.mu.Unlock()

	m, err := s.createRootfs(r)
	if err != nil {
		s.mu.Lock()
		delete(s.rootfs, containerID)
		s.mu.Unlock()
		return Mounted{}, fmt.Errorf("create rootfs for %s: %w", containerID, err)
	}
	return m, nil
}

// newRootfsLocked resolves the images a new rootfs is made of.
func (s *Store) newRootfsLocked(containerID, imageID string, opts RootfsOptions) (*rootfs, error) {
	rec, err := s.resolveLocked(imageID)
	if err != nil {
		return nil, err
	}
	if _, clash := s.layers[digest.NewDigestFromEncoded(digest.SHA256, containerID)]; clash {
		return nil, errors.New("ID names a layer")
	}
	r := &rootfs{ContainerID: containerID, ImageID: rec.ID, Layers: rec.Layers, UserNS: opts.UserNS}
	for _, ref := range opts.VolumeImages {
		v, err := s.resolveLocked(ref)
		if err != nil {
			return nil, fmt.Errorf("image volume: %w", err)
		}
		if len(v.Layers) == 0 {
			return nil, fmt.Errorf("image volume %s: image has no layers", ref)
		}
		r.Volumes = append(r.Volumes, imageVolume{ImageID: v.ID, Layers: v.Layers})
	}
	return r, nil
}

// createRootfs builds the directory under a temp name, renames it into
// place (the instant it exists) and mounts it.
func (s *Store) createRootfs(r *rootfs) (Mounted, error) {
	if len(r.Layers) == 0 {
		return Mounted{}, errors.New("image has no layers")
	}
	tmp, err := os.MkdirTemp(s.layerDir, tmpPrefix+"rootfs-")
	if err != nil {
		return Mounted{}, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// Traversable for root of a user namespace, as overlay2 is (see New).
	if err := os.Chmod(tmp, 0o711); err != nil {
		return Mounted{}, err
	}
	dirs := []string{"diff", "work", "merged"}
	if len(r.Volumes) > 0 {
		dirs = append(dirs, volumesDir, filepath.Join(volumesDir, volumeBottom))
		for i := range r.Volumes {
			dirs = append(dirs, filepath.Join(volumesDir, strconv.Itoa(i)))
		}
	}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return Mounted{}, err
		}
	}
	if r.UserNS != nil {
		// The writable layer's root is root's inside.
		if err := os.Chown(filepath.Join(tmp, "diff"), int(r.UserNS.UID), int(r.UserNS.GID)); err != nil {
			return Mounted{}, err
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(tmp, rootfsFile), r); err != nil {
		return Mounted{}, err
	}
	dir := s.rootfsPath(r.ContainerID)
	if err := os.Rename(tmp, dir); err != nil {
		return Mounted{}, err
	}
	if err := atomicfile.SyncDir(s.layerDir); err != nil {
		return Mounted{}, err
	}
	m, err := s.mount(r)
	if err != nil {
		err = errors.Join(err, s.unmountAll(r), os.RemoveAll(dir))
		return Mounted{}, err
	}
	return m, nil
}

// MountRootfs mounts an existing writable layer again (after a reboot or a
// container restart); it does nothing when already mounted.
func (s *Store) MountRootfs(ctx context.Context, containerID string) (Mounted, error) {
	s.mu.Lock()
	r, ok := s.rootfs[containerID]
	s.mu.Unlock()
	if !ok {
		return Mounted{}, fmt.Errorf("mount rootfs for %s: %w", containerID, os.ErrNotExist)
	}
	m, err := s.mount(r)
	if err != nil {
		return Mounted{}, fmt.Errorf("mount rootfs for %s: %w", containerID, err)
	}
	return m, nil
}

// mount mounts what of r is not mounted yet: the rootfs and its volumes.
func (s *Store) mount(r *rootfs) (Mounted, error) {
	m := Mounted{Path: filepath.Join(s.rootfsPath(r.ContainerID), "merged")}
	if r.UserNS != nil {
		if err := s.mountIDMappedOverlay(r.ContainerID, m.Path, r.Layers, r.UserNS, true, 0); err != nil {
			return Mounted{}, err
		}
	} else {
		// Paths relative to overlay2 keep the options short: ~30 bytes a layer.
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/diff,workdir=%s/work,index=off",
			lowerFor(r.Layers), r.ContainerID, r.ContainerID)
		if err := s.mountOverlay(m.Path, opts, 0); err != nil {
			return Mounted{}, err
		}
	}
	for i, v := range r.Volumes {
		p, err := s.mountVolume(r, i, v)
		if err != nil {
			return Mounted{}, err
		}
		m.Volumes = append(m.Volumes, p)
		m.VolumeImageIDs = append(m.VolumeImageIDs, v.ImageID)
	}
	return m, nil
}

// mountOverlay mounts an overlay at target unless one is there; the
// lower, upper and work paths in opts are relative to the layer directory.
func (s *Store) mountOverlay(target, opts string, flags uintptr) error {
	if mounted, err := isMountpoint(target); err != nil || mounted {
		return err
	}
	if len(opts) >= maxMountOptions {
		return fmt.Errorf("mount overlay %s: options exceed a page", target)
	}
	if err := mountIn(s.layerDir, "overlay", target, "overlay", flags, opts); err != nil {
		return fmt.Errorf("mount overlay %s: %w", target, err)
	}
	return nil
}

// mountIn runs mount(2) with dir as the working directory. The cwd is
// per-process, so the mount runs on a locked thread that first unshares its
// fs attributes; the thread is never unlocked, so Go ends it afterwards
// instead of reusing a thread with a changed cwd.
func mountIn(dir, source, target, fstype string, flags uintptr, data string) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", dir, err)
			return
		}
		errc <- unix.Mount(source, target, fstype, flags, data)
	}()
	return <-errc
}

// isMountpoint compares the device of p with that of its parent: overlay
// mounts always get their own.
func isMountpoint(p string) (bool, error) {
	var st, pst unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(p), &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev, nil
}

// RootfsIDs lists the containers that have a writable layer.
func (s *Store) RootfsIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.rootfs))
	for id := range s.rootfs {
		ids = append(ids, id)
	}
	return ids
}

// RemoveRootfs takes a container's writable layer, and the layers nothing
// else uses, out of the store at once; they are unmounted and deleted in
// the background (WaitRemovals). Removing what is absent succeeds.
func (s *Store) RemoveRootfs(ctx context.Context, containerID string) error {
	s.mu.Lock()
	r, ok := s.rootfs[containerID]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	// Image volumes and id-mapped layer mounts are read-only: they come
	// off here, cheaply. The writable overlay is renamed still mounted
	// (its container is gone): its unmount, which syncs the filesystem,
	// and the deletion happen in the trash, off the caller's path.
	if err := s.unmountVolumes(r); err != nil {
		return fmt.Errorf("remove rootfs for %s: %w", containerID, err)
	}
	s.mu.Lock()
	gone := filepath.Join(s.layerDir, fmt.Sprintf("%sdel-%s-%d", tmpPrefix, containerID, time.Now().UnixNano()))
	if err := os.Rename(s.rootfsPath(containerID), gone); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.mu.Unlock()
		return fmt.Errorf("remove rootfs for %s: %w", containerID, err)
	}
	delete(s.rootfs, containerID)
	doomed := s.detachUnusedLocked(r.allLayers())
	s.mu.Unlock()
	if err := atomicfile.SyncDir(s.layerDir); err != nil {
		klog.ErrorS(err, "Sync the layer directory", "dir", s.layerDir)
	}
	fault.Crash("container.remove.after-rootfs-trash")
	s.trash.put(append(doomed, gone))
	return nil
}

// WaitRemovals returns once the writable layers removed so far are
// unmounted and deleted from disk.
func (s *Store) WaitRemovals() { s.trash.wait() }

func unmount(p string) error {
	for {
		err := unix.Unmount(p, 0)
		switch {
		case err == nil:
			continue // stacked mounts: until none is left
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mountpoint (any more)
		case errors.Is(err, unix.EBUSY):
			return unix.Unmount(p, unix.MNT_DETACH)
		default:
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
}

// RootfsUsage is the disk usage of a container's writable layer: the last
// measurement if it is younger than maxAge, else MeasureRootfs's.
func (s *Store) RootfsUsage(containerID string, maxAge time.Duration) (bytes, inodes uint64, err error) {
	if u, at, ok := s.CachedRootfsUsage(containerID); ok && time.Since(at) < maxAge {
		return uint64(u.Bytes), uint64(u.Inodes), nil
	}
	u, err := s.MeasureRootfs(containerID)
	if err != nil {
		return 0, 0, err
	}
	return uint64(u.Bytes), uint64(u.Inodes), nil
}

// MeasureRootfs walks a container's writable layer (its upper directory)
// now and keeps the figure as the layer's last measurement, which
// CachedRootfsUsage and ContainerFsUsage report without walking.
func (s *Store) MeasureRootfs(containerID string) (Usage, error) {
	s.mu.Lock()
	r, ok := s.rootfs[containerID]
	s.mu.Unlock()
	if !ok {
		return Usage{}, fmt.Errorf("rootfs usage of %s: %w", containerID, os.ErrNotExist)
	}
	u, err := walkUsage(filepath.Join(s.rootfsPath(containerID), "diff"))
	if err != nil {
		return Usage{}, fmt.Errorf("rootfs usage of %s: %w", containerID, err)
	}
	s.mu.Lock()
	r.usage, r.usageAt = u, time.Now()
	s.mu.Unlock()
	return u, nil
}

// RootfsDir is the directory the writable layers live in: the filesystem
// their usage is reported on.
func (s *Store) RootfsDir() string { return s.layerDir }

// CachedRootfsUsage is the last measurement of a container's writable
// layer (RootfsUsage's, which the stats refresher keeps current for
// running containers) and when it was taken, without measuring: ok is
// false before the first one.
func (s *Store) CachedRootfsUsage(containerID string) (u Usage, at time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, found := s.rootfs[containerID]
	if !found || r.usageAt.IsZero() {
		return Usage{}, time.Time{}, false
	}
	return r.usage, r.usageAt, true
}

// ContainerFsUsage sums the last known usage of every writable layer; the
// values are those RootfsUsage last measured (the kubelet asks for them
// with every container stats call).
func (s *Store) ContainerFsUsage() FsUsage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := FsUsage{Mountpoint: s.layerDir, Timestamp: time.Now()}
	for _, r := range s.rootfs {
		out.UsedBytes += uint64(r.usage.Bytes)
		out.InodesUsed += uint64(r.usage.Inodes)
	}
	return out
}

// loadRootfs indexes the writable layers a previous run left.
func (s *Store) loadRootfs(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(s.layerDir, "*", rootfsFile))
	if err != nil {
		return err
	}
	for _, f := range files {
		r := &rootfs{}
		if err := atomicfile.ReadJSON(f, r); err != nil {
			return fmt.Errorf("load rootfs: %w", err)
		}
		if missing := s.missingLayer(r.allLayers()); missing != "" {
			klog.InfoS("Container rootfs refers to a missing layer", "container", r.ContainerID, "layer", missing)
		}
		s.rootfs[r.ContainerID] = r
	}
	return nil
}

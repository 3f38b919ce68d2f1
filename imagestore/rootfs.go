package imagestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
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

// CreateRootfs creates and mounts the writable layer of a container over
// the layers of imageID and returns the merged directory.
func (s *Store) CreateRootfs(ctx context.Context, containerID, imageID string) (string, error) {
	if err := validContainerID(containerID); err != nil {
		return "", err
	}
	s.mu.Lock()
	if r, ok := s.rootfs[containerID]; ok {
		s.mu.Unlock()
		if r.ImageID != imageID && !strings.HasPrefix(r.ImageID, "sha256:"+imageID) {
			return "", fmt.Errorf("rootfs of container %s already exists for image %s", containerID, r.ImageID)
		}
		return s.MountRootfs(ctx, containerID)
	}
	rec, err := s.resolveLocked(imageID)
	if err != nil {
		s.mu.Unlock()
		return "", fmt.Errorf("create rootfs for %s: %w", containerID, err)
	}
	if _, clash := s.layers[digest.NewDigestFromEncoded(digest.SHA256, containerID)]; clash {
		s.mu.Unlock()
		return "", fmt.Errorf("create rootfs for %s: ID names a layer", containerID)
	}
	r := &rootfs{ContainerID: containerID, ImageID: rec.ID, Layers: rec.Layers}
	s.rootfs[containerID] = r // holds the layers from here on
	s.mu.Unlock()

	merged, err := s.createRootfs(r)
	if err != nil {
		s.mu.Lock()
		delete(s.rootfs, containerID)
		s.mu.Unlock()
		return "", fmt.Errorf("create rootfs for %s: %w", containerID, err)
	}
	return merged, nil
}

// createRootfs builds the directory under a temp name, renames it into
// place (the instant it exists) and mounts it.
func (s *Store) createRootfs(r *rootfs) (string, error) {
	if len(r.Layers) == 0 {
		return "", errors.New("image has no layers")
	}
	tmp, err := os.MkdirTemp(s.layerDir, tmpPrefix+"rootfs-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	for _, d := range []string{"diff", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(tmp, rootfsFile), r); err != nil {
		return "", err
	}
	dir := s.rootfsPath(r.ContainerID)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	if err := atomicfile.SyncDir(s.layerDir); err != nil {
		return "", err
	}
	merged, err := s.mount(r)
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return merged, nil
}

// MountRootfs mounts an existing writable layer again (after a reboot or a
// container restart); it does nothing when already mounted.
func (s *Store) MountRootfs(ctx context.Context, containerID string) (string, error) {
	s.mu.Lock()
	r, ok := s.rootfs[containerID]
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("mount rootfs for %s: %w", containerID, os.ErrNotExist)
	}
	merged, err := s.mount(r)
	if err != nil {
		return "", fmt.Errorf("mount rootfs for %s: %w", containerID, err)
	}
	return merged, nil
}

func (s *Store) mount(r *rootfs) (string, error) {
	merged := filepath.Join(s.rootfsPath(r.ContainerID), "merged")
	if mounted, err := isMountpoint(merged); err != nil || mounted {
		return merged, err
	}
	// Paths relative to overlay2 keep the options short: ~30 bytes a layer.
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/diff,workdir=%s/work,index=off",
		lowerFor(r.Layers), r.ContainerID, r.ContainerID)
	if len(opts) >= maxMountOptions {
		return "", fmt.Errorf("%d layers: overlay options exceed a page", len(r.Layers))
	}
	if err := mountIn(s.layerDir, "overlay", merged, "overlay", opts); err != nil {
		return "", fmt.Errorf("mount overlay %s: %w", merged, err)
	}
	return merged, nil
}

// mountIn runs mount(2) with dir as the working directory. The cwd is
// per-process, so the mount runs on a locked thread that first unshares its
// fs attributes; the thread is never unlocked, so Go ends it afterwards
// instead of reusing a thread with a changed cwd.
func mountIn(dir, source, target, fstype, data string) error {
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
		errc <- unix.Mount(source, target, fstype, 0, data)
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

// RemoveRootfs takes a container's writable layer, and the layers nothing
// else uses, out of the store at once; they are unmounted and deleted in
// the background (WaitRemovals). Removing what is absent succeeds.
func (s *Store) RemoveRootfs(ctx context.Context, containerID string) error {
	s.mu.Lock()
	r, ok := s.rootfs[containerID]
	if !ok {
		s.mu.Unlock()
		return nil
	}
	// Renamed with its overlay still mounted (its container is gone): the
	// unmount, which syncs the filesystem, and the deletion happen in the
	// trash, off the caller's path.
	gone := filepath.Join(s.layerDir, fmt.Sprintf("%sdel-%s-%d", tmpPrefix, containerID, time.Now().UnixNano()))
	if err := os.Rename(s.rootfsPath(containerID), gone); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.mu.Unlock()
		return fmt.Errorf("remove rootfs for %s: %w", containerID, err)
	}
	delete(s.rootfs, containerID)
	doomed := s.detachUnusedLocked(r.Layers)
	s.mu.Unlock()
	atomicfile.SyncDir(s.layerDir)
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
// measurement if it is younger than maxAge, else a walk of the upper
// directory now.
func (s *Store) RootfsUsage(containerID string, maxAge time.Duration) (bytes, inodes uint64, err error) {
	s.mu.Lock()
	r, ok := s.rootfs[containerID]
	if ok && !r.usageAt.IsZero() && time.Since(r.usageAt) < maxAge {
		u := r.usage
		s.mu.Unlock()
		return uint64(u.Bytes), uint64(u.Inodes), nil
	}
	s.mu.Unlock()
	if !ok {
		return 0, 0, fmt.Errorf("rootfs usage of %s: %w", containerID, os.ErrNotExist)
	}
	u, err := walkUsage(filepath.Join(s.rootfsPath(containerID), "diff"))
	if err != nil {
		return 0, 0, fmt.Errorf("rootfs usage of %s: %w", containerID, err)
	}
	s.mu.Lock()
	r.usage, r.usageAt = u, time.Now()
	s.mu.Unlock()
	return uint64(u.Bytes), uint64(u.Inodes), nil
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

func walkUsage(dir string) (layerUsage, error) {
	var u layerUsage
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // the container deleted it meanwhile
			}
			return err
		}
		if p == dir {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*unixStat)
		if ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		u.Inodes++
		if ok {
			u.Bytes += st.Blocks * 512
		}
		return nil
	})
	return u, err
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
		if missing := s.missingLayer(r.Layers); missing != "" {
			klog.InfoS("Container rootfs refers to a missing layer", "container", r.ContainerID, "layer", missing)
		}
		s.rootfs[r.ContainerID] = r
	}
	return nil
}

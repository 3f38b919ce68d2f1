package imagestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// UserNS is the user namespace a container runs in. Its rootfs and image
// volumes are overlays of id-mapped mounts of the image layers: a file the
// layer gives to root shows as root inside, and no layer is ever chowned.
type UserNS struct {
	// Path is the namespace (a pin or /proc/<pid>/ns/user).
	Path string `json:"path"`
	// UID and GID are the host IDs of root in the namespace: the owner of
	// the writable layer's root.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// idmapPrefix names the directories that hold a container's id-mapped
// layer mounts while an overlay is mounted over them: overlay2/<cid>/idmap-<target>.
const idmapPrefix = "idmap-"

// mountIDMappedOverlay mounts at target an overlay whose lower layers are
// id-mapped mounts of layers, seen through ns. upper is "" for a read-only
// overlay, else the container's writable layer (upper and work under its
// rootfs dir). The id-mapped mounts are detached once the overlay holds
// them, so nothing but the overlay stays mounted.
func (s *Store) mountIDMappedOverlay(cid, target string, layers []digest.Digest, ns *UserNS, withUpper bool, flags uintptr) (err error) {
	if mounted, err := isMountpoint(target); err != nil || mounted {
		return err
	}
	dir := filepath.Join(s.rootfsPath(cid), idmapPrefix+filepath.Base(target))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, removeIDMapDir(dir)) }()
	nsf, err := os.Open(ns.Path)
	if err != nil {
		return fmt.Errorf("open user namespace: %w", err)
	}
	defer nsf.Close()
	// Top layer first, as overlay's lowerdir lists them.
	names := make([]string, 0, len(layers)+1)
	for i := len(layers) - 1; i >= 0; i-- {
		name := strconv.Itoa(len(names))
		src := filepath.Join(s.layerDir, linkDir, shortID(layers[i]))
		if err := idmapMount(src, filepath.Join(dir, name), int(nsf.Fd())); err != nil {
			return fmt.Errorf("id-mapped mount of layer %s: %w", layers[i], err)
		}
		names = append(names, name)
	}
	var opts string
	if withUpper {
		opts = fmt.Sprintf("lowerdir=%s,upperdir=../diff,workdir=../work,index=off", strings.Join(names, ":"))
	} else {
		if len(names) == 1 {
			names = append(names, "../"+volumesDir+"/"+volumeBottom)
		}
		opts = "lowerdir=" + strings.Join(names, ":")
	}
	if len(opts) >= maxMountOptions {
		return fmt.Errorf("mount overlay %s: options exceed a page", target)
	}
	// Paths relative to the id-mapped mounts keep the options short.
	if err := mountIn(dir, "overlay", target, "overlay", flags, opts); err != nil {
		return fmt.Errorf("mount overlay %s over id-mapped layers: %w", target, err)
	}
	return nil
}

// idmapMount mounts a clone of src at target, id-mapped through the user
// namespace usernsFD (open_tree, mount_setattr, move_mount; Linux 5.12).
func idmapMount(src, target string, usernsFD int) error {
	if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFD)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("mount_setattr idmap %s: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s: %w", target, err)
	}
	return nil
}

// removeIDMapDir detaches the id-mapped layer mounts under dir and
// removes it; an overlay mounted over them keeps its own references.
func removeIDMapDir(dir string) error {
	entries, _ := os.ReadDir(dir)
	var errs []error
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

// removeIDMapDirs removes what a crash between the id-mapped mounts and
// their detach left in a container's rootfs dir.
func (s *Store) removeIDMapDirs(cid string) error {
	dirs, _ := filepath.Glob(filepath.Join(s.rootfsPath(cid), idmapPrefix+"*"))
	var errs []error
	for _, d := range dirs {
		errs = append(errs, removeIDMapDir(d))
	}
	return errors.Join(errs...)
}

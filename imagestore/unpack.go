package imagestore

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/imagestore/overlay"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
	opaqueXattr    = overlay.OpaqueXattr
	paxXattrPrefix = "SCHILY.xattr."
)

// ErrUnsafeLayer marks a layer refused because an entry would write outside
// its directory or is otherwise malformed; the whole layer is discarded.
var ErrUnsafeLayer = errors.New("unsafe layer")

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// unpacker writes one layer tar into a fresh directory. Every path is
// resolved component by component with openat(O_NOFOLLOW) from the
// directory's own fd, so no entry can reach outside it: not by "..", not by
// an absolute name, and not through a symlink or a non-directory the tar
// itself planted. Only this process writes into the directory until it is
// committed, so the checks cannot be raced.
type unpacker struct {
	root  int
	usage layerUsage
	dirs  []dirTime

	// cached parent: consecutive entries usually share a directory.
	cachePath string
	cacheFD   int
}

type dirTime struct {
	parts        []string
	atime, mtime time.Time
}

// unpackLayer extracts the tar stream r into dir, which must be empty.
func unpackLayer(r io.Reader, dir string) (layerUsage, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return layerUsage{}, fmt.Errorf("open %s: %w", dir, err)
	}
	u := &unpacker{root: fd, cacheFD: -1}
	defer u.close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return layerUsage{}, fmt.Errorf("read tar: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return layerUsage{}, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	if err := u.applyDirTimes(); err != nil {
		return layerUsage{}, err
	}
	return u.usage, nil
}

func (u *unpacker) close() {
	u.dropCache()
	unix.Close(u.root)
}

func (u *unpacker) dropCache() {
	if u.cacheFD >= 0 {
		unix.Close(u.cacheFD)
	}
	u.cachePath, u.cacheFD = "", -1
}

// splitName validates a tar entry name and returns its components. The
// layer root itself ("./") yields no components.
func splitName(name string) ([]string, error) {
	if strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("%w: absolute path", ErrUnsafeLayer)
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("%w: path contains a .. element", ErrUnsafeLayer)
		}
		parts = append(parts, p)
	}
	return parts, nil
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	parts, err := splitName(hdr.Name)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return nil // the layer root keeps the store's own mode and owner
	}
	if hdr.Uid < 0 || hdr.Gid < 0 {
		return fmt.Errorf("%w: negative owner", ErrUnsafeLayer)
	}
	parent, err := u.openParent(parts[:len(parts)-1])
	if err != nil {
		return err
	}
	base := parts[len(parts)-1]
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(parent, base)
	}
	if hdr.Typeflag == tar.TypeDir {
		return u.dir(parent, base, parts, hdr)
	}
	// The cached parent stays valid: removing base never removes its parent.
	if err := removeExisting(parent, base); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeReg: // tar.Reader turns the old TypeRegA into TypeReg
		if isSparse(hdr) {
			// A tiny sparse map can declare exabytes of zeros; image
			// builders never write sparse entries.
			return fmt.Errorf("%w: sparse file", ErrUnsafeLayer)
		}
		return u.regular(parent, base, hdr, r)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, parent, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case tar.TypeLink:
		return u.hardlink(parent, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(parent, base, mode, int(dev)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	default:
		return fmt.Errorf("%w: unsupported entry type %q", ErrUnsafeLayer, hdr.Typeflag)
	}
	u.usage.Inodes++
	return setMeta(parent, base, hdr, -1)
}

// openParent opens the directory named by parts, creating missing
// directories (tars may omit them) and refusing symlinks and non-dirs.
// The returned fd belongs to the cache; callers must not close it.
func (u *unpacker) openParent(parts []string) (int, error) {
	key := strings.Join(parts, "/")
	if u.cacheFD >= 0 && u.cachePath == key {
		return u.cacheFD, nil
	}
	fd, err := u.walk(parts, true)
	if err != nil {
		return -1, err
	}
	u.dropCache()
	u.cachePath, u.cacheFD = key, fd
	return fd, nil
}

// walk opens parts below the root. The caller closes the fd.
func (u *unpacker) walk(parts []string, create bool) (int, error) {
	fd, err := unix.Dup(u.root)
	if err != nil {
		return -1, err
	}
	for i, p := range parts {
		next, err := openDirAt(fd, p)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, p, 0o755); err == nil {
				u.usage.Inodes++
				next, err = openDirAt(fd, p)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("parent %q: %w", path.Join(parts[:i+1]...), err)
		}
		fd = next
	}
	return fd, nil
}

// openDirAt opens a directory without following a symlink.
func openDirAt(dirfd int, name string) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		return fd, nil
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, fmt.Errorf("%w: write through symlink", ErrUnsafeLayer)
		}
		return -1, fmt.Errorf("%w: not a directory", ErrUnsafeLayer)
	}
	return -1, err
}

func (u *unpacker) dir(parent int, base string, parts []string, hdr *tar.Header) error {
	var st unix.Stat_t
	err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := removeExisting(parent, base); err != nil {
			return err
		}
		err = unix.ENOENT
	}
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdirat(parent, base, 0o700); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		u.usage.Inodes++
	} else if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	u.dirs = append(u.dirs, dirTime{parts: parts, atime: accessTime(hdr), mtime: hdr.ModTime})
	return setMeta(parent, base, hdr, -1)
}

func (u *unpacker) regular(parent int, base string, hdr *tar.Header, r io.Reader) error {
	fd, err := unix.Openat(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(fileWriter{f}, r, *buf)
	copyBufs.Put(buf)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n != hdr.Size {
		return fmt.Errorf("write: %d of %d bytes", n, hdr.Size)
	}
	u.usage.Bytes += n
	u.usage.Inodes++
	return setMeta(parent, base, hdr, fd)
}

// fileWriter hides os.File's ReadFrom so CopyBuffer uses the pooled buffer
// instead of a fresh 32 KiB one per file.
type fileWriter struct{ f *os.File }

func (w fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (u *unpacker) hardlink(parent int, base string, hdr *tar.Header) error {
	parts, err := splitName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("link target: %w", err)
	}
	if len(parts) == 0 {
		return fmt.Errorf("%w: hardlink to the layer root", ErrUnsafeLayer)
	}
	tparent, err := u.walk(parts[:len(parts)-1], false)
	if err != nil {
		return fmt.Errorf("link target: %w", err)
	}
	defer unix.Close(tparent)
	// Flags 0: a link to a symlink links the symlink itself, never its target.
	if err := unix.Linkat(tparent, parts[len(parts)-1], parent, base, 0); err != nil {
		return fmt.Errorf("hardlink to %q: %w", hdr.Linkname, err)
	}
	return nil
}

// whiteout turns AUFS-style whiteouts into overlay ones: .wh.<name> becomes
// a 0/0 char device named <name>; .wh..wh..opq marks its directory opaque.
func (u *unpacker) whiteout(parent int, base string) error {
	if base == opaqueMarker {
		if err := unix.Fsetxattr(parent, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark opaque: %w", err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other AUFS metadata has no overlay meaning
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: whiteout of %q", ErrUnsafeLayer, name)
	}
	if err := removeExisting(parent, name); err != nil {
		return err
	}
	if err := unix.Mknodat(parent, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %q: %w", name, err)
	}
	u.usage.Inodes++
	return nil
}

// removeExisting deletes name in parent (a tree, if it is a directory), so
// that a later entry with the same name replaces an earlier one.
func removeExisting(parent int, name string) error {
	err := unix.Unlinkat(parent, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return fmt.Errorf("replace: %w", err)
	}
	fd, err := openDirAt(parent, name)
	if err != nil {
		return fmt.Errorf("replace: %w", err)
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeExisting(fd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(parent, name, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("replace: %w", err)
	}
	return nil
}

// setMeta applies owner, mode, xattrs and times, in that order: chown
// clears set-id bits, so chmod comes after it. fd is the open file for a
// regular file, else -1.
func setMeta(parent int, base string, hdr *tar.Header, fd int) error {
	if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Fchmodat(parent, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := setXattrs(parent, base, hdr, fd); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil // after the children are written: applyDirTimes
	}
	ts := []unix.Timespec{timespec(accessTime(hdr)), timespec(hdr.ModTime)}
	if err := unix.UtimesNanoAt(parent, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func setXattrs(parent int, base string, hdr *tar.Header, fd int) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, "trusted.overlay.") {
			// overlayfs would obey these (redirects, metacopy): never from a tar.
			klog.V(2).InfoS("Skipping overlay xattr from layer", "entry", hdr.Name, "xattr", name)
			continue
		}
		var err error
		if fd >= 0 {
			err = unix.Fsetxattr(fd, name, []byte(v), 0)
		} else {
			// lsetxattr through the parent's fd path: never follows base.
			err = unix.Lsetxattr("/proc/self/fd/"+strconv.Itoa(parent)+"/"+base, name, []byte(v), 0)
		}
		if errors.Is(err, unix.ENOTSUP) || (errors.Is(err, unix.EPERM) && hdr.Typeflag == tar.TypeSymlink) {
			klog.V(2).InfoS("Filesystem refuses xattr from layer", "entry", hdr.Name, "xattr", name)
			continue
		}
		if err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

// applyDirTimes sets directory times last, deepest first, since creating
// children changes them.
func (u *unpacker) applyDirTimes() error {
	u.dropCache()
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		parent, err := u.walk(d.parts[:len(d.parts)-1], false)
		if err != nil {
			continue // removed or replaced by a later entry
		}
		ts := []unix.Timespec{timespec(d.atime), timespec(d.mtime)}
		err = unix.UtimesNanoAt(parent, d.parts[len(d.parts)-1], ts, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(parent)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("set times of %q: %w", path.Join(d.parts...), err)
		}
	}
	return nil
}

func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func accessTime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// Package overlay reads the overlayfs on-disk format as the image store
// lays it out: whiteouts, opaque directories, and the changes a
// container's upper directory makes to the layers below it.
//
// The store mounts overlay as root with index=off and neither redirect_dir
// nor metacopy, so the xattrs are the trusted.overlay.* ones and a renamed
// lower directory is copied up whole rather than redirected.
package overlay

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

const (
	// OpaqueXattr set to "y" on a directory hides the layers below it.
	OpaqueXattr = "trusted.overlay.opaque"
	// redirectXattr appears only with redirect_dir=on, which the store does
	// not use; a change list that ignored it would be wrong, so it is refused.
	redirectXattr = "trusted.overlay.redirect"
)

// IsWhiteout reports whether st is an overlay whiteout: a character device
// with device number 0:0.
func IsWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// IsOpaque reports whether the directory at path is marked opaque. A
// filesystem without xattr support has no opaque directories.
func IsOpaque(path string) (bool, error) {
	var buf [2]byte
	n, err := unix.Lgetxattr(path, OpaqueXattr, buf[:])
	switch {
	case err == nil:
		// Newer kernels also write "x" (a directory holding xwhiteouts):
		// that is not opaque.
		return n == 1 && buf[0] == 'y', nil
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.ERANGE):
		return false, nil
	default:
		return false, fmt.Errorf("read %s of %s: %w", OpaqueXattr, path, err)
	}
}

func hasRedirect(path string) (bool, error) {
	_, err := unix.Lgetxattr(path, redirectXattr, nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
		return false, nil
	default:
		return false, fmt.Errorf("read %s of %s: %w", redirectXattr, path, err)
	}
}

package imagestore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// duCounter sums disk usage the way du(1) does, so that the figures the
// store reports can be checked with it: allocated bytes (st_blocks × 512,
// so the holes of a sparse file count nothing and a file's last block
// counts whole), each inode once however many hard links reach it, and,
// when dev is set, nothing on another filesystem (a container's mounted
// rootfs). One counter may serve several walks at once.
type duCounter struct {
	dev uint64 // 0: any filesystem

	mu   sync.Mutex
	seen map[devIno]bool // inodes with more than one link, already counted
}

type devIno struct{ dev, ino uint64 }

func newDuCounter(dev uint64) *duCounter {
	return &duCounter{dev: dev, seen: map[devIno]bool{}}
}

// counts reports whether st is to be counted, marking a hard-linked inode
// as seen so that its other names are not.
func (c *duCounter) counts(st *syscall.Stat_t) bool {
	if c.dev != 0 && st.Dev != c.dev {
		return false
	}
	if st.Nlink <= 1 || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return true
	}
	k := devIno{st.Dev, st.Ino}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[k] {
		return false
	}
	c.seen[k] = true
	return true
}

// walk sums what is under dir, and dir itself when withRoot. A directory
// for which prune returns true is counted but not entered. Entries that
// vanish during the walk (a running container deletes files) are skipped.
func (c *duCounter) walk(dir string, withRoot bool, prune func(string) bool) (Usage, error) {
	var u Usage
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if !c.counts(st) {
			if d.IsDir() {
				return filepath.SkipDir // another filesystem
			}
			return nil
		}
		if p != dir || withRoot {
			u.Inodes++
			u.Bytes += st.Blocks * 512
		}
		if d.IsDir() && p != dir && prune != nil && prune(p) {
			return filepath.SkipDir
		}
		return nil
	})
	return u, err
}

// walkUsage is the usage of the files under dir (dir itself not counted):
// the writable layer figure the CRI reports.
func walkUsage(dir string) (Usage, error) {
	return newDuCounter(0).walk(dir, false, nil)
}

package framework

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DirEntries lists the tree under root as layer entries, root itself
// left out: directories, regular files and symlinks with their modes
// (setuid/setgid/sticky included), owned by root. Other file types
// (devices, fifos, sockets) are refused: runtimes provide /dev.
func DirEntries(root string) ([]Entry, error) {
	var out []Entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e, err := dirEntry(p, filepath.ToSlash(rel), fi)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	return out, nil
}

func dirEntry(full, rel string, fi fs.FileInfo) (Entry, error) {
	mode := int64(fi.Mode().Perm())
	for _, bit := range []struct {
		m   fs.FileMode
		tar int64
	}{{fs.ModeSetuid, 0o4000}, {fs.ModeSetgid, 0o2000}, {fs.ModeSticky, 0o1000}} {
		if fi.Mode()&bit.m != 0 {
			mode |= bit.tar
		}
	}
	switch {
	case fi.IsDir():
		return Entry{Name: rel, Type: tar.TypeDir, Mode: mode}, nil
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			return Entry{}, err
		}
		return Symlink(rel, target), nil
	case fi.Mode().IsRegular():
		body, err := os.ReadFile(full)
		if err != nil {
			return Entry{}, err
		}
		return Entry{Name: rel, Type: tar.TypeReg, Mode: mode, Body: body}, nil
	}
	return Entry{}, fmt.Errorf("%s: unsupported file type %v", full, fi.Mode().Type())
}

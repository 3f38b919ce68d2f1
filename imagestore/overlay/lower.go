package overlay

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// lowerStack answers what the read-only layers show at a path, as overlay
// would merge them, without mounting them. Paths are relative to the
// layer roots, "" being the root. Layers are immutable once committed, so
// lookups are cached.
type lowerStack struct {
	layers []string // diff directories, top first
	// dirs maps a directory that the merged view shows to the layers that
	// contribute entries to it, top first; a path that is no directory in
	// the merged view maps to nil.
	dirs map[string][]int
}

func newLowerStack(layers []string) (*lowerStack, error) {
	all := make([]int, 0, len(layers))
	for i := range layers {
		all = append(all, i)
	}
	l := &lowerStack{layers: layers, dirs: map[string][]int{}}
	root, err := l.cutAtOpaque(all, "")
	if err != nil {
		return nil, err
	}
	l.dirs[""] = root
	return l, nil
}

// lstat looks at rel in one layer. Absent means neither it nor, below a
// whiteout, anything else is there for this layer.
func (l *lowerStack) lstat(layer int, rel string) (st unix.Stat_t, found bool, err error) {
	err = unix.Lstat(path.Join(l.layers[layer], rel), &st)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("lower layer: %w", &os.PathError{Op: "lstat", Path: path.Join(l.layers[layer], rel), Err: err})
	}
	return st, true, nil
}

// cutAtOpaque keeps the layers down to and including the first whose
// directory rel is opaque: the ones below it are hidden.
func (l *lowerStack) cutAtOpaque(layers []int, rel string) ([]int, error) {
	for i, li := range layers {
		opaque, err := IsOpaque(path.Join(l.layers[li], rel))
		if err != nil {
			return nil, fmt.Errorf("lower layer: %w", err)
		}
		if opaque {
			return layers[:i+1], nil
		}
	}
	return layers, nil
}

// dirLayers returns the layers whose directory rel the merged view shows,
// or nil when rel is no directory there.
func (l *lowerStack) dirLayers(rel string) ([]int, error) {
	if d, ok := l.dirs[rel]; ok {
		return d, nil
	}
	parent, err := l.dirLayers(parentOf(rel))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, li := range parent {
		st, found, err := l.lstat(li, rel)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			break // a file or whiteout hides rel in the layers below
		}
		out = append(out, li)
	}
	if out, err = l.cutAtOpaque(out, rel); err != nil {
		return nil, err
	}
	l.dirs[rel] = out
	return out, nil
}

// lookup reports whether the merged lower view shows rel, and whether as
// a directory.
func (l *lowerStack) lookup(rel string) (exists, isDir bool, err error) {
	parent, err := l.dirLayers(parentOf(rel))
	if err != nil {
		return false, false, err
	}
	for _, li := range parent {
		st, found, err := l.lstat(li, rel)
		if err != nil {
			return false, false, err
		}
		if !found {
			continue
		}
		if IsWhiteout(&st) {
			return false, false, nil
		}
		return true, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
	}
	return false, false, nil
}

// children lists the names the merged lower view shows in directory rel.
func (l *lowerStack) children(rel string) ([]string, error) {
	layers, err := l.dirLayers(rel)
	if err != nil {
		return nil, err
	}
	decided := map[string]bool{} // name → visible; the topmost layer decides
	var names []string
	for _, li := range layers {
		dir := path.Join(l.layers[li], rel)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("lower layer: %w", err)
		}
		for _, e := range entries {
			if _, ok := decided[e.Name()]; ok {
				continue
			}
			visible := true
			if e.Type()&os.ModeCharDevice != 0 {
				st, found, err := l.lstat(li, path.Join(rel, e.Name()))
				if err != nil {
					return nil, err
				}
				visible = found && !IsWhiteout(&st)
			}
			decided[e.Name()] = visible
			if visible {
				names = append(names, e.Name())
			}
		}
	}
	return names, nil
}

// parentOf is path.Dir for paths relative to a layer root.
func parentOf(rel string) string {
	p := path.Dir(rel)
	if p == "." {
		return ""
	}
	return p
}

package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Kind is what happened to a path.
type Kind byte

const (
	// Added means the path is in the upper directory and was not in the layers.
	Added Kind = 'A'
	// Changed means the path is in the upper directory and was in the layers
	// too (copied up because it or something under it was written).
	Changed Kind = 'C'
	// Deleted means the layers have the path and the container no longer sees
	// it. Only the topmost deleted path is listed, not what was under it.
	Deleted Kind = 'D'
)

// Change is one path a container's upper directory changes.
type Change struct {
	Kind Kind
	// Path is absolute in the container's root, exactly the bytes of the
	// file names (which need not be UTF-8).
	Path string
}

// String is the text form: the kind, a space, and the escaped path.
func (c Change) String() string { return string(c.Kind) + " " + EscapePath(c.Path) }

// MarshalJSON writes {"kind":"A","path":"/x"}. JSON strings cannot carry
// bytes that are not UTF-8, so a path that is not valid UTF-8 also gets
// "pathBytes", its exact bytes in base64; "path" then has U+FFFD in place
// of each invalid byte.
func (c Change) MarshalJSON() ([]byte, error) {
	out := struct {
		Kind      string `json:"kind"`
		Path      string `json:"path"`
		PathBytes []byte `json:"pathBytes,omitempty"`
	}{Kind: string(c.Kind), Path: c.Path}
	if !utf8.ValidString(c.Path) {
		out.PathBytes = []byte(c.Path)
	}
	return json.Marshal(out)
}

// EscapePath makes a path printable on one line: a backslash becomes \\,
// newline, tab and carriage return become \n, \t and \r, and any other
// control character or byte that is not UTF-8 becomes \xNN. Every other
// character, spaces included, is printed as it is.
func EscapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRuneInString(p[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, p[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteString(p[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Changes lists what upper changes to the layers below it (diff
// directories, top first), sorted by path bytewise. It only reads.
//
// A directory replaced whole (removed, then made again: overlay marks the
// new one opaque) is C when the layers had it, each path under it that the
// layers had and the new one lacks is D, and each path in the new one is A
// or, when the layers had that path too, C. This is the same rule as
// everywhere else: the comparison is between what the layers show and
// what the container shows.
func Changes(ctx context.Context, upper string, lowers []string) ([]Change, error) {
	lower, err := newLowerStack(lowers)
	if err != nil {
		return nil, err
	}
	w := &walker{ctx: ctx, upper: upper, lower: lower}
	opaque, err := IsOpaque(upper)
	if err != nil {
		return nil, err
	}
	if err := w.dir("", opaque); err != nil {
		return nil, err
	}
	slices.SortFunc(w.out, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return w.out, nil
}

type walker struct {
	ctx   context.Context
	upper string
	lower *lowerStack
	out   []Change
}

func (w *walker) add(k Kind, rel string) { w.out = append(w.out, Change{Kind: k, Path: "/" + rel}) }

// dir walks the upper directory rel. hidesLower: rel or a directory above
// it is opaque, so what the layers have under rel and upper lacks is gone.
func (w *walker) dir(rel string, hidesLower bool) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(path.Join(w.upper, rel))
	if err != nil {
		if rel != "" && errors.Is(err, os.ErrNotExist) {
			return nil // removed by the running container meanwhile
		}
		return err
	}
	present := map[string]bool{}
	for _, e := range entries {
		seen, err := w.entry(path.Join(rel, e.Name()), hidesLower)
		if err != nil {
			return err
		}
		present[e.Name()] = seen
	}
	if !hidesLower {
		return nil
	}
	below, err := w.lower.children(rel)
	if err != nil {
		return err
	}
	for _, name := range below {
		if !present[name] {
			w.add(Deleted, path.Join(rel, name))
		}
	}
	return nil
}

// entry records the change at rel and walks it if it is a directory. It
// reports whether the container sees rel (false for a whiteout).
func (w *walker) entry(rel string, hidesLower bool) (bool, error) {
	full := path.Join(w.upper, rel)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, &os.PathError{Op: "lstat", Path: full, Err: err}
	}
	if IsWhiteout(&st) {
		// Under an opaque directory the listing of what is below finds it.
		if !hidesLower {
			if exists, _, err := w.lower.lookup(rel); err != nil {
				return false, err
			} else if exists {
				w.add(Deleted, rel)
			}
		}
		return false, nil
	}
	exists, _, err := w.lower.lookup(rel)
	if err != nil {
		return false, err
	}
	if exists {
		w.add(Changed, rel)
	} else {
		w.add(Added, rel)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return true, nil
	}
	if redirected, err := hasRedirect(full); err != nil {
		return false, err
	} else if redirected {
		return false, fmt.Errorf("%s: overlay redirect_dir is in use; renamed directories cannot be listed", full)
	}
	opaque, err := IsOpaque(full)
	if err != nil {
		return false, err
	}
	return true, w.dir(rel, hidesLower || opaque)
}

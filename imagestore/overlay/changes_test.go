package overlay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tree builds a directory from a spec: "d:path" a directory, "f:path" a
// file, "w:path" a whiteout, "o:path" an opaque directory, "l:path>target"
// a symlink.
func tree(t *testing.T, spec ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, s := range spec {
		kind, rel, target := s[0], s[2:], ""
		if i := strings.IndexByte(rel, '>'); kind == 'l' && i >= 0 {
			rel, target = rel[:i], rel[i+1:]
		}
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch kind {
		case 'd':
			err = os.Mkdir(p, 0o755)
		case 'o':
			if err = os.Mkdir(p, 0o755); err == nil {
				err = unix.Setxattr(p, OpaqueXattr, []byte("y"), 0)
			}
		case 'f':
			err = os.WriteFile(p, []byte(rel), 0o644)
		case 'w':
			err = unix.Mknod(p, unix.S_IFCHR, 0)
		case 'l':
			err = os.Symlink(target, p)
		default:
			t.Fatalf("bad spec %q", s)
		}
		if err != nil {
			t.Skipf("build %q (needs root and a filesystem with trusted xattrs): %v", s, err)
		}
	}
	return root
}

func TestChanges(t *testing.T) {
	// base: the image's first layer; top: a layer that deletes and
	// replaces some of base.
	base := tree(t,
		"f:etc/passwd", "f:etc/group", "d:var/log", "f:var/log/old",
		"f:gone-in-top", "f:opt/app/a", "f:opt/app/b", "f:opt/app/sub/c",
		"l:etc/alt>/etc", "f:usr/bin/tool", "f:usr/bin/other", "f:tmp/x")
	top := tree(t,
		"w:gone-in-top", "o:opt/app", "f:opt/app/a", "f:opt/app/new-in-top",
		"f:usr/bin/tool")
	cases := []struct {
		name  string
		upper []string
		want  []string
	}{
		{name: "empty upper", want: nil},
		{
			name:  "added, changed and deleted files",
			upper: []string{"f:new", "f:etc/passwd", "w:etc/group", "f:var/log/app.log"},
			want:  []string{"C /etc", "D /etc/group", "C /etc/passwd", "A /new", "C /var", "C /var/log", "A /var/log/app.log"},
		},
		{
			name:  "deleted from a lower layer, from the layer below it, and already deleted",
			upper: []string{"w:usr/bin/tool", "w:usr/bin/other", "w:gone-in-top"},
			want:  []string{"C /usr", "C /usr/bin", "D /usr/bin/other", "D /usr/bin/tool"},
		},
		{
			name:  "a deleted directory is listed alone",
			upper: []string{"w:var"},
			want:  []string{"D /var"},
		},
		{
			name: "directory replaced whole",
			// The layers show opt/app = {a, new-in-top} (top is opaque there).
			upper: []string{"o:opt/app", "f:opt/app/a", "f:opt/app/fresh", "d:opt/app/sub", "f:opt/app/sub/c"},
			want:  []string{"C /opt", "C /opt/app", "C /opt/app/a", "A /opt/app/fresh", "D /opt/app/new-in-top", "A /opt/app/sub", "A /opt/app/sub/c"},
		},
		{
			name:  "directory replaced whole, layers' subdirectory made again",
			upper: []string{"o:usr", "d:usr/bin", "f:usr/bin/new"},
			want:  []string{"C /usr", "C /usr/bin", "A /usr/bin/new", "D /usr/bin/other", "D /usr/bin/tool"},
		},
		{
			name:  "file replaced by a directory and directory by a file",
			upper: []string{"o:tmp/x", "f:tmp/x/inner", "f:var"},
			want:  []string{"C /tmp", "C /tmp/x", "A /tmp/x/inner", "C /var"},
		},
		{
			name: "symlinks are entries, never followed",
			// etc/alt is a symlink to /etc in base: a directory at that
			// path in upper must not be looked up through it on the host.
			upper: []string{"l:link>/etc/passwd", "o:etc/alt", "f:etc/alt/passwd"},
			want:  []string{"C /etc", "C /etc/alt", "A /etc/alt/passwd", "A /link"},
		},
		{
			name:  "names with newlines and bytes that are not UTF-8",
			upper: []string{"f:new\nline", "f:bad\xff\xfename", "w:tmp/x"},
			want:  []string{"A /bad\xff\xfename", "A /new\nline", "C /tmp", "D /tmp/x"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			upper := tree(t, tc.upper...)
			changes, err := Changes(context.Background(), upper, []string{top, base})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range changes {
				got = append(got, string(c.Kind)+" "+c.Path)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("changes:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestChangesRefusesRedirect(t *testing.T) {
	upper := tree(t, "d:moved")
	if err := unix.Setxattr(filepath.Join(upper, "moved"), redirectXattr, []byte("/orig"), 0); err != nil {
		t.Skipf("set %s: %v", redirectXattr, err)
	}
	if _, err := Changes(context.Background(), upper, []string{tree(t, "d:orig")}); err == nil {
		t.Error("Changes with a redirected directory succeeded; want an error naming redirect_dir")
	}
}

func TestEscapePath(t *testing.T) {
	for in, want := range map[string]string{
		"/plain/path":      "/plain/path",
		"/with space":      "/with space",
		"/new\nline":       `/new\nline`,
		"/tab\there\r":     `/tab\there\r`,
		`/back\slash`:      `/back\\slash`,
		"/bad\xff":         `/bad\xff`,
		"/ctl\x01\x7f":     `/ctl\x01\x7f`,
		"/ünïcode-日本":      "/ünïcode-日本",
		"/half\xe6\x97end": `/half\xe6\x97end`,
	} {
		if got := EscapePath(in); got != want {
			t.Errorf("EscapePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChangeJSON(t *testing.T) {
	for _, c := range []Change{{Added, "/new\nline"}, {Deleted, "/bad\xff\xfe"}, {Changed, "/ok"}} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back struct {
			Kind      string `json:"kind"`
			Path      string `json:"path"`
			PathBytes string `json:"pathBytes"`
		}
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		exact := back.Path
		if back.PathBytes != "" {
			raw, err := base64.StdEncoding.DecodeString(back.PathBytes)
			if err != nil {
				t.Fatal(err)
			}
			exact = string(raw)
		}
		if back.Kind != string(c.Kind) || exact != c.Path {
			t.Errorf("%q round-trips through %s as kind %q path %q", c.Path, b, back.Kind, exact)
		}
	}
}

package oci

import "testing"

func TestConmonUUIDFitsSocketPath(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, state := range []string{"/run/criserver", "/tmp/crie2e-1234567890/state/with/a/rather/deep/directory/tree"} {
		r := &Runtime{stateDir: state}
		attach, _ := r.AttachPaths(id)
		if len(attach) > maxSocketPath {
			t.Errorf("state %s: attach socket path is %d bytes: %s", state, len(attach), attach)
		}
		if u := r.conmonUUID(id); len(u) < 12 || id[:len(u)] != u {
			t.Errorf("state %s: uuid %q is not a prefix of the ID", state, u)
		}
	}
	if u := (&Runtime{stateDir: "/run/criserver"}).conmonUUID(id); u != id {
		t.Errorf("short state dir: uuid %q, want the whole ID", u)
	}
}

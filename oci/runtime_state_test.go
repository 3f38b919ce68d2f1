package oci

import "testing"

func TestCgroupRelPath(t *testing.T) {
	for in, want := range map[string]string{
		"/criserver/pod1/c1": "/criserver/pod1/c1",
		"criserver/c1":       "/criserver/c1",
		"kubepods-besteffort-pod1.slice:criserver:c1": "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/criserver-c1.scope",
		"criserver.slice:criserver:c1":                "/criserver.slice/criserver-c1.scope",
		"-.slice:criserver:c1":                        "/criserver-c1.scope",
		"kubepods-pod1.slice":                         "/kubepods.slice/kubepods-pod1.slice",
	} {
		if got := CgroupRelPath(in); got != want {
			t.Errorf("CgroupRelPath(%q) = %q, want %q", in, got, want)
		}
	}
}

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

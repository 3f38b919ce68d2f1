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

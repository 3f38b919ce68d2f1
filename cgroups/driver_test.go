package cgroups

import (
	"errors"
	"testing"
)

func TestDriverPath(t *testing.T) {
	tests := []struct {
		driver       Driver
		parent, id   string
		want         string
		wantInvalid  bool
		wantAnyError bool
	}{
		{driver: Cgroupfs, parent: "/kubepods/burstable/pod1", id: "c1", want: "/kubepods/burstable/pod1/c1"},
		{driver: "", parent: "/kubepods/pod1/", id: "c1", want: "/kubepods/pod1/c1"},
		{driver: Cgroupfs, id: "c1", want: "/criserver/c1"},
		{driver: Cgroupfs, parent: "kubepods", id: "c1", wantInvalid: true},
		{driver: Cgroupfs, parent: "/kubepods/../etc", id: "c1", wantInvalid: true},
		{driver: Cgroupfs, parent: "/kubepods", id: "a/b", wantInvalid: true},
		{driver: Cgroupfs, parent: "/kubepods", id: "..", wantInvalid: true},
		{driver: Cgroupfs, parent: "/kubepods", id: "", wantInvalid: true},
		{driver: Systemd, parent: "kubepods-burstable-pod1.slice", id: "c1", want: "kubepods-burstable-pod1.slice:criserver:c1"},
		{driver: Systemd, id: "c1", want: "criserver.slice:criserver:c1"},
		{driver: Systemd, parent: "/kubepods/pod1", id: "c1", wantInvalid: true},
		{driver: Systemd, parent: "kubepods", id: "c1", wantInvalid: true},
		{driver: Systemd, parent: "a.slice", id: "x:y", wantInvalid: true},
		{driver: "docker", parent: "/x", id: "c1", wantAnyError: true},
	}
	for _, tc := range tests {
		got, err := tc.driver.Path(tc.parent, tc.id)
		wantErr := tc.wantInvalid || tc.wantAnyError
		if (err != nil) != wantErr || got != tc.want {
			t.Errorf("%q.Path(%q, %q) = %q, %v; want %q (error %v)", tc.driver, tc.parent, tc.id, got, err, tc.want, wantErr)
		}
		if tc.wantInvalid && !errors.Is(err, ErrInvalid) {
			t.Errorf("%q.Path(%q, %q) error %v does not wrap ErrInvalid", tc.driver, tc.parent, tc.id, err)
		}
	}
}

func TestRelPath(t *testing.T) {
	for in, want := range map[string]string{
		"/criserver/pod1/c1":                          "/criserver/pod1/c1",
		"/kubepods/burstable/pod1":                    "/kubepods/burstable/pod1",
		"criserver/c1":                                "/criserver/c1",
		"kubepods-besteffort-pod1.slice:criserver:c1": "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/criserver-c1.scope",
		"criserver.slice:criserver:c1":                "/criserver.slice/criserver-c1.scope",
		"-.slice:criserver:c1":                        "/criserver-c1.scope",
		"kubepods-pod1.slice":                         "/kubepods.slice/kubepods-pod1.slice",
		"criserver.slice":                             "/criserver.slice",
		"-.slice":                                     "/",
	} {
		if got := RelPath(in); got != want {
			t.Errorf("RelPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDriver(t *testing.T) {
	for in, wantErr := range map[string]bool{"cgroupfs": false, "systemd": false, "": true, "Systemd": true, "docker": true} {
		d, err := ParseDriver(in)
		if (err != nil) != wantErr || (err == nil && string(d) != in) {
			t.Errorf("ParseDriver(%q) = %q, %v; want error %v", in, d, err, wantErr)
		}
	}
}

func TestIsContainerCgroup(t *testing.T) {
	const id = "0123abcd"
	tests := []struct {
		rel  string
		want bool
	}{
		{"/kubepods/burstable/pod1/" + id, true},
		{"/criserver/" + id, true},
		{"/kubepods.slice/kubepods-pod1.slice/criserver-" + id + ".scope", true},
		{"/kubepods/burstable/pod1", false},
		{"/kubepods/burstable/pod1/" + id + "/sub", false},
		{"/kubepods/pod1/x" + id, false},
		{"/criserver-" + id + ".scope/init", false},
		{"/docker-" + id + ".scope", false},
		{"/", false},
	}
	for _, tc := range tests {
		if got := IsContainerCgroup(tc.rel, id); got != tc.want {
			t.Errorf("IsContainerCgroup(%q, %q) = %v, want %v", tc.rel, id, got, tc.want)
		}
	}
	if IsContainerCgroup("/criserver/", "") {
		t.Error("an empty id names a cgroup")
	}
}

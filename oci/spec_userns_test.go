package oci

import (
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSpecUserNamespace(t *testing.T) {
	in := testInput(t)
	in.Sandbox.UserNSPath = "/run/userns/pod1"
	in.IDMappedMounts = true
	dir := t.TempDir()
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	in.Config.Mounts = []*runtime.Mount{
		{HostPath: dir, ContainerPath: "/mapped", UidMappings: mapping, GidMappings: mapping},
		{HostPath: dir, ContainerPath: "/plain"},
	}
	s := mustGenerate(t, in).Spec
	var user *specs.LinuxNamespace
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.UserNamespace {
			user = &s.Linux.Namespaces[i]
		}
	}
	if user == nil || user.Path != "/run/userns/pod1" {
		t.Errorf("user namespace = %+v, want the pod's by path", user)
	}
	if len(s.Linux.UIDMappings) != 0 || len(s.Linux.GIDMappings) != 0 {
		t.Errorf("mappings beside a namespace path: %v %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	if s.Version != ociVersionIDMap {
		t.Errorf("ociVersion = %q, want %q", s.Version, ociVersionIDMap)
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	if m := findMount(s, "/mapped"); m == nil || !reflect.DeepEqual(m.UIDMappings, want) || !reflect.DeepEqual(m.GIDMappings, want) {
		t.Errorf("id-mapped mount = %+v", m)
	}
	if m := findMount(s, "/plain"); m == nil || m.UIDMappings != nil || m.GIDMappings != nil {
		t.Errorf("plain mount = %+v", m)
	}
	// Empty masked and read-only lists in a user namespace: procMount Unmasked.
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("masked %v, read-only %v; want none (Unmasked)", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	in.Config.Linux.SecurityContext.MaskedPaths = []string{"/proc/kcore"}
	if s := mustGenerate(t, in).Spec; !reflect.DeepEqual(s.Linux.MaskedPaths, []string{"/proc/kcore"}) || !reflect.DeepEqual(s.Linux.ReadonlyPaths, defaultReadonlyPaths) {
		t.Errorf("masked %v, read-only %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
}

func TestSpecUserNamespaceHostNetwork(t *testing.T) {
	in := testInput(t)
	in.Sandbox.UserNSPath = "/run/userns/pod1"
	in.Sandbox.HostNetwork, in.Sandbox.NetNSPath, in.Sandbox.UTSNSPath = true, "", ""
	s := mustGenerate(t, in).Spec
	if m := findMount(s, "/sys"); m == nil || m.Type != "bind" || m.Source != "/sys" || !reflect.DeepEqual(m.Options, []string{"rbind", "rprivate", "nosuid", "noexec", "nodev", "ro"}) {
		t.Errorf("/sys with host network in a user namespace = %+v, want the host's bound read-only", m)
	}
	in.Sandbox.UserNSPath = ""
	if m := findMount(mustGenerate(t, in).Spec, "/sys"); m == nil || m.Type != "sysfs" {
		t.Errorf("/sys with host network = %+v, want sysfs", m)
	}
}

func TestSpecMountIDMappingsRefused(t *testing.T) {
	dir := t.TempDir()
	one := []*runtime.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	two := append(slices.Clone(one), &runtime.IDMapping{ContainerId: 65536, HostId: 300000, Length: 10})
	for _, tc := range []struct {
		name     string
		idmap    bool
		uid, gid []*runtime.IDMapping
		want     string
	}{
		{"unsupported", false, one, one, "not supported"},
		{"two mappings", true, two, one, "exactly one"},
		{"uid only", true, one, nil, "exactly one"},
		{"empty", true, []*runtime.IDMapping{{HostId: 1}}, one, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(t)
			in.IDMappedMounts = tc.idmap
			in.Config.Mounts = []*runtime.Mount{{HostPath: dir, ContainerPath: "/m", UidMappings: tc.uid, GidMappings: tc.gid}}
			_, err := GenerateSpec(in)
			mustInvalid(t, err, tc.want)
		})
	}
	// Outside a user namespace, empty lists still mean the defaults.
	if s := mustGenerate(t, testInput(t)).Spec; !reflect.DeepEqual(s.Linux.MaskedPaths, defaultMaskedPaths) {
		t.Errorf("masked paths without a user namespace: %v", s.Linux.MaskedPaths)
	}
}

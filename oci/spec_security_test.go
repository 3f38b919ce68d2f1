package oci

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPrivileged(t *testing.T) {
	in := testInput(t)
	sc := in.Config.Linux.SecurityContext
	sc.Privileged = true
	sc.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	sc.Capabilities = &runtime.Capability{DropCapabilities: []string{"ALL"}}
	// A fake /dev with one device node copied from the host's /dev/null.
	var st = mustStatDev(t, "/dev/null")
	in.Host.DevDir = fakeDevDir(t, st)
	s := mustGenerate(t, in).Spec
	if !reflect.DeepEqual(s.Process.Capabilities.Bounding, allCapabilities) {
		t.Errorf("bounding = %v", s.Process.Capabilities.Bounding)
	}
	if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil || s.Linux.Seccomp != nil {
		t.Errorf("masked %v readonly %v seccomp %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Linux.Seccomp)
	}
	if s.Process.NoNewPrivileges {
		t.Error("privileged container got no_new_privs without asking")
	}
	if got := s.Linux.Resources.Devices; len(got) != 1 || !got[0].Allow || got[0].Access != "rwm" {
		t.Errorf("device rules = %+v", got)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/null" || s.Linux.Devices[0].Type != "c" {
		t.Errorf("devices = %+v", s.Linux.Devices)
	}
	for _, m := range s.Mounts {
		if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && !contains(m.Options, "rw") {
			t.Errorf("%s not rw: %v", m.Destination, m.Options)
		}
	}
	sc.NoNewPrivs = true
	if !mustGenerate(t, in).Spec.Process.NoNewPrivileges {
		t.Error("no_new_privs asked but not set")
	}
}

func TestUnprivilegedDefaults(t *testing.T) {
	in := testInput(t)
	in.Config.Linux.SecurityContext.NoNewPrivs = true
	in.Config.Linux.SecurityContext.ReadonlyRootfs = true
	s := mustGenerate(t, in).Spec
	if !s.Process.NoNewPrivileges || !s.Root.Readonly {
		t.Errorf("nnp %v readonly rootfs %v", s.Process.NoNewPrivileges, s.Root.Readonly)
	}
	if !reflect.DeepEqual(s.Linux.MaskedPaths, defaultMaskedPaths) || !reflect.DeepEqual(s.Linux.ReadonlyPaths, defaultReadonlyPaths) {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if got := s.Linux.Resources.Devices; len(got) != 1 || got[0].Allow {
		t.Errorf("device rules = %+v, want deny-all only", got)
	}
	for _, m := range s.Mounts {
		if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && !contains(m.Options, "ro") {
			t.Errorf("%s not ro: %v", m.Destination, m.Options)
		}
	}
}

func TestMaskedPaths(t *testing.T) {
	got, err := pathList([]string{"/proc/x", "/sys/y/"}, defaultMaskedPaths, "masked")
	if err != nil || !reflect.DeepEqual(got, []string{"/proc/x", "/sys/y"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	in := testInput(t)
	in.Config.Linux.SecurityContext.ReadonlyPaths = []string{"/proc/ro"}
	in.Config.Linux.SecurityContext.MaskedPaths = []string{"/proc/masked"}
	s := mustGenerate(t, in).Spec
	if !reflect.DeepEqual(s.Linux.MaskedPaths, []string{"/proc/masked"}) || !reflect.DeepEqual(s.Linux.ReadonlyPaths, []string{"/proc/ro"}) {
		t.Fatalf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	in.Config.Linux.SecurityContext.MaskedPaths = []string{"proc/rel"}
	_, err = GenerateSpec(in)
	mustInvalid(t, err, "proc/rel")
}

func TestSeccomp(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{"defaultAction":"SCMP_ACT_LOG","architectures":["SCMP_ARCH_X86_64"],
		"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"name":"mount","action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{not json`), 0o644); err != nil {
		t.Fatal(err)
	}
	prof := func(kind runtime.SecurityProfile_ProfileType, ref string) *runtime.LinuxContainerSecurityContext {
		return &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{ProfileType: kind, LocalhostRef: ref}}
	}
	tests := []struct {
		name    string
		sc      *runtime.LinuxContainerSecurityContext
		check   func(t *testing.T, s *specs.LinuxSeccomp)
		wantErr string
	}{
		{name: "nil is unconfined", sc: nil, check: isNil},
		{name: "unconfined", sc: prof(runtime.SecurityProfile_Unconfined, ""), check: isNil},
		{name: "runtime default", sc: prof(runtime.SecurityProfile_RuntimeDefault, ""), check: func(t *testing.T, s *specs.LinuxSeccomp) {
			if s == nil || s.DefaultAction != specs.ActErrno || s.DefaultErrnoRet == nil || *s.DefaultErrnoRet != 1 {
				t.Fatalf("profile = %+v", s)
			}
			if !allows(s, "read") || !allows(s, "execve") || allows(s, "mount") || allows(s, "reboot") {
				t.Fatal("default profile allows the wrong syscalls")
			}
			if len(s.Architectures) == 0 {
				t.Fatal("no architectures")
			}
		}},
		{name: "deprecated runtime/default", sc: &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "runtime/default"},
			check: func(t *testing.T, s *specs.LinuxSeccomp) {
				if s == nil || s.DefaultAction != specs.ActErrno {
					t.Fatalf("profile = %+v", s)
				}
			}},
		{name: "localhost", sc: prof(runtime.SecurityProfile_Localhost, good), check: func(t *testing.T, s *specs.LinuxSeccomp) {
			if s == nil || s.DefaultAction != specs.ActLog || !allows(s, "read") || allows(s, "mount") {
				t.Fatalf("profile = %+v", s)
			}
		}},
		{name: "localhost missing", sc: prof(runtime.SecurityProfile_Localhost, filepath.Join(dir, "nope.json")), wantErr: "does not exist"},
		{name: "localhost relative", sc: prof(runtime.SecurityProfile_Localhost, "good.json"), wantErr: "absolute"},
		{name: "localhost bad json", sc: prof(runtime.SecurityProfile_Localhost, bad), wantErr: "bad.json"},
		{name: "localhost device", sc: prof(runtime.SecurityProfile_Localhost, "/dev/zero"), wantErr: "regular file"},
		{name: "localhost directory", sc: prof(runtime.SecurityProfile_Localhost, dir), wantErr: "regular file"},
		{name: "unknown type", sc: prof(9, ""), wantErr: "unknown seccomp"},
		{name: "unknown deprecated", sc: &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "weird"}, wantErr: "weird"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := seccompProfile(tc.sc, defaultCapabilities)
			if tc.wantErr != "" {
				mustInvalid(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestSeccompCapabilityRules(t *testing.T) {
	sc := &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{}}
	withAdmin, err := seccompProfile(sc, append([]string{"CAP_SYS_ADMIN", "CAP_SYS_PTRACE"}, defaultCapabilities...))
	if err != nil {
		t.Fatal(err)
	}
	if !allows(withAdmin, "mount") || !allows(withAdmin, "unshare") || !allows(withAdmin, "ptrace") {
		t.Error("CAP_SYS_ADMIN/CAP_SYS_PTRACE holders miss their syscalls")
	}
	without, err := seccompProfile(sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if allows(without, "chroot") || allows(without, "unshare") {
		t.Error("container without capabilities may chroot/unshare")
	}
	// clone without CAP_SYS_ADMIN is allowed only without namespace flags.
	found := false
	for _, r := range without.Syscalls {
		if contains(r.Names, "clone") && len(r.Args) == 1 && r.Args[0].Op == specs.OpMaskedEqual {
			found = true
		}
	}
	if !found {
		t.Error("no masked clone rule for unprivileged containers")
	}
}

func TestSeccompArchMap(t *testing.T) {
	for goarch, want := range map[string][]specs.Arch{
		"amd64": {specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		"arm64": {specs.ArchAARCH64, specs.ArchARM},
	} {
		s, err := parseSeccomp(defaultSeccompJSON, nil, goarch)
		if err != nil || !reflect.DeepEqual(s.Architectures, want) {
			t.Errorf("%s: arches = %v, %v", goarch, s.Architectures, err)
		}
	}
	s, err := parseSeccomp(defaultSeccompJSON, nil, "arm64")
	if err != nil || allows(s, "arch_prctl") {
		t.Errorf("arm64 profile allows x86-only arch_prctl (%v)", err)
	}
}

func isNil(t *testing.T, s *specs.LinuxSeccomp) {
	t.Helper()
	if s != nil {
		t.Fatalf("profile = %+v, want none", s)
	}
}

// allows tells whether an unconditional allow rule names the syscall.
func allows(s *specs.LinuxSeccomp, name string) bool {
	for _, r := range s.Syscalls {
		if r.Action == specs.ActAllow && len(r.Args) == 0 && contains(r.Names, name) {
			return true
		}
	}
	return false
}

func TestAppArmor(t *testing.T) {
	none := &HostInfo{}
	aa := &HostInfo{AppArmor: true, AppArmorProfiles: map[string]bool{"mine": true, apparmorDefaultProfile: true}}
	prof := func(kind runtime.SecurityProfile_ProfileType, ref string) *runtime.LinuxContainerSecurityContext {
		return &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{ProfileType: kind, LocalhostRef: ref}}
	}
	tests := []struct {
		name    string
		sc      *runtime.LinuxContainerSecurityContext
		host    *HostInfo
		want    string
		wantErr string
	}{
		{"no apparmor: default is a no-op", prof(runtime.SecurityProfile_RuntimeDefault, ""), none, "", ""},
		{"no apparmor: unconfined", prof(runtime.SecurityProfile_Unconfined, ""), none, "", ""},
		{"no apparmor: localhost refused", prof(runtime.SecurityProfile_Localhost, "mine"), none, "", "not enabled"},
		{"no apparmor: deprecated localhost refused", &runtime.LinuxContainerSecurityContext{ApparmorProfile: "localhost/mine"}, none, "", "not enabled"},
		{"apparmor: default", prof(runtime.SecurityProfile_RuntimeDefault, ""), aa, apparmorDefaultProfile, ""},
		{"apparmor: unconfined", nil, aa, "unconfined", ""},
		{"apparmor: localhost", prof(runtime.SecurityProfile_Localhost, "localhost/mine"), aa, "mine", ""},
		{"apparmor: localhost not loaded", prof(runtime.SecurityProfile_Localhost, "other"), aa, "", "not loaded"},
		{"apparmor: deprecated default", &runtime.LinuxContainerSecurityContext{ApparmorProfile: "runtime/default"}, aa, apparmorDefaultProfile, ""},
		{"bad deprecated", &runtime.LinuxContainerSecurityContext{ApparmorProfile: "x"}, aa, "", "unknown apparmor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := apparmorProfile(tc.sc, tc.host)
			if tc.wantErr != "" {
				mustInvalid(t, err, tc.wantErr)
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

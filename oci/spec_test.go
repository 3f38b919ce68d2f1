package oci

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1::/usr/sbin:/bin/false
# a comment
broken line
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
`

const testGroup = `root:x:0:
wheel:x:10:root,alice
alice:x:1000:
bob:x:1001:
staff:x:50:alice,bob
audio:x:29:bob
`

// testRootfs makes a rootfs with /etc/passwd and /etc/group.
func testRootfs(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// testInput is a valid input for an unprivileged container in a pod with
// its own namespaces; tests change what they check.
func testInput(t testing.TB) SpecInput {
	t.Helper()
	return SpecInput{
		ContainerID: "c1",
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "app"},
			Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{}},
		},
		Sandbox: SandboxInfo{
			ID: "pod1", Hostname: "pod-host",
			NetNSPath: "/run/netns/pod1", IPCNSPath: "/run/ipcns/pod1", UTSNSPath: "/run/utsns/pod1",
			ResolvConfPath: "/pods/pod1/resolv.conf", HostnamePath: "/pods/pod1/hostname",
			HostsPath: "/pods/pod1/hosts", ShmPath: "/pods/pod1/shm", CgroupParent: "/kubepods/pod1",
		},
		Image:       ocispec.Image{Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh"}}},
		ImageRootfs: testRootfs(t),
		Host:        &HostInfo{MountInfoPath: "/proc/self/mountinfo", DevDir: t.TempDir()},
	}
}

func mustGenerate(t *testing.T, in SpecInput) *Result {
	t.Helper()
	res, err := GenerateSpec(in)
	if err != nil {
		t.Fatalf("GenerateSpec: %v", err)
	}
	return res
}

func mustInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to mention %q", err, want)
	}
}

func TestGenerateSpecBasics(t *testing.T) {
	in := testInput(t)
	in.Config.Tty = true
	in.Config.Annotations = map[string]string{"a": "b"}
	res := mustGenerate(t, in)
	s := res.Spec
	if s.Version != ociVersion || s.Root.Path != in.ImageRootfs || s.Root.Readonly {
		t.Errorf("version/root = %q %+v", s.Version, s.Root)
	}
	if !s.Process.Terminal || s.Process.Cwd != "/" || s.Hostname != "pod-host" {
		t.Errorf("terminal/cwd/hostname = %v %q %q", s.Process.Terminal, s.Process.Cwd, s.Hostname)
	}
	if !reflect.DeepEqual(s.Annotations, map[string]string{"a": "b"}) {
		t.Errorf("annotations = %v", s.Annotations)
	}
	if s.Linux.CgroupsPath != "/kubepods/pod1/c1" {
		t.Errorf("cgroupsPath = %q", s.Linux.CgroupsPath)
	}
	if res.StopSignal != syscall.SIGTERM {
		t.Errorf("stop signal = %v", res.StopSignal)
	}
	if res.User.UID != 0 || res.User.GID != 0 || !reflect.DeepEqual(res.User.AdditionalGids, []uint32{0, 10}) {
		t.Errorf("user = %+v", res.User)
	}
	if s.Process.NoNewPrivileges || s.Linux.Seccomp != nil || s.Process.ApparmorProfile != "" {
		t.Errorf("nnp/seccomp/apparmor should be unset by default: %v %v %q", s.Process.NoNewPrivileges, s.Linux.Seccomp, s.Process.ApparmorProfile)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateSpecRefusesBadInput(t *testing.T) {
	for name, mutate := range map[string]func(*SpecInput){
		"nil config":    func(in *SpecInput) { in.Config = nil },
		"empty id":      func(in *SpecInput) { in.ContainerID = "" },
		"no command":    func(in *SpecInput) { in.Image.Config.Cmd = nil },
		"relative cwd":  func(in *SpecInput) { in.Config.WorkingDir = "tmp" },
		"id with slash": func(in *SpecInput) { in.ContainerID = "../x" },
		"cdi devices":   func(in *SpecInput) { in.Config.CDIDevices = []*runtime.CDIDevice{{Name: "vendor.com/gpu=0"}} },
	} {
		t.Run(name, func(t *testing.T) {
			in := testInput(t)
			mutate(&in)
			if _, err := GenerateSpec(in); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	ep, cmd := []string{"/ep", "-x"}, []string{"cmd1", "cmd2"}
	tests := []struct {
		name              string
		command, args     []string
		entrypoint, imgCm []string
		want              []string
	}{
		{"image only", nil, nil, ep, cmd, []string{"/ep", "-x", "cmd1", "cmd2"}},
		{"image cmd only", nil, nil, nil, cmd, []string{"cmd1", "cmd2"}},
		{"args replace cmd", nil, []string{"a"}, ep, cmd, []string{"/ep", "-x", "a"}},
		{"command drops cmd", []string{"/c"}, nil, ep, cmd, []string{"/c"}},
		{"command and args", []string{"/c"}, []string{"a", "b"}, ep, cmd, []string{"/c", "a", "b"}},
		{"args without entrypoint", nil, []string{"/a"}, nil, cmd, []string{"/a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := commandLine(tc.command, tc.args, tc.entrypoint, tc.imgCm)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := commandLine(nil, nil, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty command: err = %v", err)
	}
	if _, err := commandLine([]string{""}, nil, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty argv0: err = %v", err)
	}
}

func kv(k, v string) *runtime.KeyValue { return &runtime.KeyValue{Key: k, Value: []byte(v)} }

func TestMergeEnv(t *testing.T) {
	tests := []struct {
		name  string
		image []string
		cri   []*runtime.KeyValue
		want  []string
	}{
		{"defaults", nil, nil, []string{"PATH=" + defaultPath, "HOSTNAME=h", "HOME=/root"}},
		{"image kept, cri overrides in place", []string{"PATH=/bin", "A=1", "B=2"}, []*runtime.KeyValue{kv("A", "x"), kv("C", "3")},
			[]string{"PATH=/bin", "A=x", "B=2", "C=3", "HOSTNAME=h", "HOME=/root"}},
		{"cri sets path and home", nil, []*runtime.KeyValue{kv("PATH", "/p"), kv("HOME", "/h"), kv("HOSTNAME", "n")},
			[]string{"PATH=/p", "HOME=/h", "HOSTNAME=n"}},
		{"value with equals", []string{"X=a=b"}, []*runtime.KeyValue{kv("Y", "c=d")},
			[]string{"X=a=b", "Y=c=d", "PATH=" + defaultPath, "HOSTNAME=h", "HOME=/root"}},
		{"later cri wins", nil, []*runtime.KeyValue{kv("A", "1"), kv("A", "2")},
			[]string{"A=2", "PATH=" + defaultPath, "HOSTNAME=h", "HOME=/root"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mergeEnv(tc.image, tc.cri, "h", "/root")
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	for _, bad := range []*runtime.KeyValue{kv("", "x"), kv("A=B", "x"), kv("A", "x\x00")} {
		if _, err := mergeEnv(nil, []*runtime.KeyValue{bad}, "", ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("env %q: err = %v, want ErrInvalid", bad.GetKey(), err)
		}
	}
}

func TestWorkingDir(t *testing.T) {
	for _, tc := range []struct{ cri, image, want string }{
		{"", "", "/"}, {"", "/srv", "/srv"}, {"/app/", "/srv", "/app"}, {"/a/../b", "", "/b"},
	} {
		got, err := workingDir(tc.cri, tc.image)
		if err != nil || got != tc.want {
			t.Errorf("workingDir(%q,%q) = %q, %v; want %q", tc.cri, tc.image, got, err, tc.want)
		}
	}
}

func TestStopSignal(t *testing.T) {
	tests := []struct {
		cri   runtime.Signal
		image string
		want  syscall.Signal
	}{
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "", syscall.SIGTERM},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGINT", syscall.SIGINT},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "quit", syscall.SIGQUIT},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "9", syscall.SIGKILL},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGRTMIN+3", syscall.Signal(37)},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "bogus", syscall.SIGTERM},
		{runtime.Signal_SIGNAL_SIGUSR1, "SIGINT", syscall.SIGUSR1},
		{runtime.Signal_SIGNAL_SIGRTMINPLUS1, "", syscall.Signal(35)},
		{runtime.Signal_SIGNAL_SIGRTMAXMINUS1, "", syscall.Signal(63)},
		{runtime.Signal_SIGNAL_SIGRTMAX, "", syscall.Signal(64)},
	}
	for _, tc := range tests {
		got, err := stopSignal(tc.cri, tc.image)
		if err != nil || got != tc.want {
			t.Errorf("stopSignal(%v, %q) = %v, %v; want %v", tc.cri, tc.image, got, err, tc.want)
		}
	}
}

func TestNoRlimitsEver(t *testing.T) {
	for name, mutate := range map[string]func(*SpecInput){
		"plain":      func(*SpecInput) {},
		"privileged": func(in *SpecInput) { in.Config.Linux.SecurityContext.Privileged = true },
		"resources": func(in *SpecInput) {
			in.Config.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 30, CpuShares: 512}
		},
	} {
		t.Run(name, func(t *testing.T) {
			in := testInput(t)
			mutate(&in)
			res := mustGenerate(t, in)
			b, err := json.Marshal(res.Spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.Spec.Process.Rlimits != nil || strings.Contains(string(b), "rlimits") {
				t.Fatalf("spec has rlimits: %s", b)
			}
		})
	}
}

func TestNamespaces(t *testing.T) {
	nsOf := func(s *specs.Spec) map[specs.LinuxNamespaceType]string {
		m := map[specs.LinuxNamespaceType]string{}
		for _, n := range s.Linux.Namespaces {
			m[n.Type] = n.Path
		}
		return m
	}
	in := testInput(t)
	ns := nsOf(mustGenerate(t, in).Spec)
	want := map[specs.LinuxNamespaceType]string{
		specs.MountNamespace: "", specs.NetworkNamespace: "/run/netns/pod1", specs.UTSNamespace: "/run/utsns/pod1",
		specs.IPCNamespace: "/run/ipcns/pod1", specs.PIDNamespace: "",
	}
	if !reflect.DeepEqual(ns, want) {
		t.Errorf("default namespaces = %v, want %v", ns, want)
	}

	in = testInput(t)
	in.Sandbox.HostNetwork, in.Sandbox.HostIPC, in.Sandbox.HostPID = true, true, true
	in.Sandbox.NetNSPath, in.Sandbox.IPCNSPath = "", ""
	s := mustGenerate(t, in).Spec
	if ns := nsOf(s); !reflect.DeepEqual(ns, map[specs.LinuxNamespaceType]string{specs.MountNamespace: ""}) {
		t.Errorf("host namespaces = %v", ns)
	}
	if s.Hostname != "" {
		t.Errorf("hostname set without a UTS namespace: %q", s.Hostname)
	}

	in = testInput(t)
	in.Sandbox.PIDNSPath = "/proc/42/ns/pid"
	in.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}
	if got := nsOf(mustGenerate(t, in).Spec)[specs.PIDNamespace]; got != "/proc/42/ns/pid" {
		t.Errorf("pod pid ns = %q", got)
	}
	in.Sandbox.PIDNSPath = ""
	if got, ok := nsOf(mustGenerate(t, in).Spec)[specs.PIDNamespace]; !ok || got != "" {
		t.Errorf("pod without shared pid ns: pid ns = %q, %v; want a new one", got, ok)
	}

	in = testInput(t)
	in.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "other"}
	_, err := GenerateSpec(in)
	mustInvalid(t, err, "other")
	in.TargetPIDNSPath = "/proc/7/ns/pid"
	if got := nsOf(mustGenerate(t, in).Spec)[specs.PIDNamespace]; got != "/proc/7/ns/pid" {
		t.Errorf("target pid ns = %q", got)
	}

	in = testInput(t)
	in.Sandbox.NetNSPath = ""
	_, err = GenerateSpec(in)
	mustInvalid(t, err, "network namespace")

	in = testInput(t)
	in.Host.CgroupV2 = true
	if _, ok := nsOf(mustGenerate(t, in).Spec)[specs.CgroupNamespace]; !ok {
		t.Error("cgroup v2 host: no private cgroup namespace")
	}
}

func TestSysctls(t *testing.T) {
	in := testInput(t)
	in.Sandbox.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	if got := mustGenerate(t, in).Spec.Linux.Sysctl; got["net.ipv4.ip_forward"] != "1" {
		t.Fatalf("sysctl = %v", got)
	}
}

func BenchmarkGenerateSpec(b *testing.B) {
	in := testInput(b)
	in.Config.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	in.Config.Linux.SecurityContext.RunAsUsername = "alice"
	for b.Loop() {
		if _, err := GenerateSpec(in); err != nil {
			b.Fatal(err)
		}
	}
}

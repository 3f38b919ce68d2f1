package oci

import (
	"encoding/json"
	"errors"
	"path"
	"testing"

	"github.com/criserver/criserver/cgroups"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fuzzSeeds are CRI configs that exercise every rule; the fuzzer mutates
// their protobuf encoding, so every field of ContainerConfig gets random
// values.
func fuzzSeeds() []*runtime.ContainerConfig {
	sc := func(mod func(*runtime.LinuxContainerSecurityContext)) *runtime.LinuxContainerConfig {
		s := &runtime.LinuxContainerSecurityContext{}
		mod(s)
		return &runtime.LinuxContainerConfig{SecurityContext: s}
	}
	return []*runtime.ContainerConfig{
		{},
		{Command: []string{"/bin/sh", "-c"}, Args: []string{"id"}, WorkingDir: "/tmp", Tty: true, Stdin: true,
			Envs: []*runtime.KeyValue{{Key: "A", Value: []byte("1")}}, Annotations: map[string]string{"k": "v"}},
		{Mounts: []*runtime.Mount{{HostPath: "/tmp", ContainerPath: "/data", Readonly: true, RecursiveReadOnly: true},
			{HostPath: "/proc", ContainerPath: "/host/proc", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}}},
		{Devices: []*runtime.Device{{HostPath: "/dev/null", ContainerPath: "/dev/x", Permissions: "rw"}}},
		{Linux: sc(func(s *runtime.LinuxContainerSecurityContext) {
			s.RunAsUser, s.RunAsGroup = &runtime.Int64Value{Value: 1000}, &runtime.Int64Value{Value: 50}
			s.SupplementalGroups = []int64{4000}
			s.SupplementalGroupsPolicy = runtime.SupplementalGroupsPolicy_Strict
			s.Capabilities = &runtime.Capability{AddCapabilities: []string{"ALL"}, DropCapabilities: []string{"NET_RAW"}}
			s.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
			s.NoNewPrivs, s.ReadonlyRootfs = true, true
			s.MaskedPaths, s.ReadonlyPaths = []string{"/proc/x"}, []string{"/proc/y"}
		})},
		{Linux: sc(func(s *runtime.LinuxContainerSecurityContext) {
			s.Privileged = true
			s.RunAsUsername = "alice"
			s.Apparmor = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "p"}
			s.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/nonexistent.json"}
			s.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "x"}
		})},
		{Linux: &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{
			CpuShares: 2, CpuQuota: -1, CpuPeriod: 100000, MemoryLimitInBytes: 1 << 20, MemorySwapLimitInBytes: 2 << 20,
			OomScoreAdj: -999, CpusetCpus: "0-1,3", CpusetMems: "0",
			HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 1}}, Unified: map[string]string{"memory.high": "max"}}}},
		{StopSignal: runtime.Signal_SIGNAL_SIGRTMAXMINUS1},
	}
}

// FuzzGenerateSpec feeds random CRI configs (protobuf-encoded), image
// configs (JSON) and sandbox settings to GenerateSpec: it must return
// either an ErrInvalid error or a spec that holds the invariants below,
// and never panic.
func FuzzGenerateSpec(f *testing.F) {
	for i, c := range fuzzSeeds() {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		img := `{"config":{"Cmd":["/bin/sh"],"User":"bob","Volumes":{"/v":{}},"StopSignal":"SIGINT"}}`
		f.Add(b, []byte(img), i%2 == 0, uint8(i), "/kubepods/pod1", "alice:staff")
	}
	f.Add([]byte{}, []byte(`{}`), true, uint8(3), "kubepods-pod1.slice", "")
	root := testRootfs(f)
	devDir := f.TempDir()
	volDir := f.TempDir()
	f.Fuzz(func(t *testing.T, cfgBytes, imgJSON []byte, hostNet bool, mode uint8, parent, user string) {
		cfg := &runtime.ContainerConfig{}
		if err := proto.Unmarshal(cfgBytes, cfg); err != nil {
			return
		}
		var img ocispec.Image
		_ = json.Unmarshal(imgJSON, &img)
		if user != "" {
			img.Config.User = user
		}
		in := SpecInput{
			ContainerID: "c1", Config: cfg, Image: img, ImageRootfs: root,
			Sandbox: SandboxInfo{ID: "p", Hostname: "h", NetNSPath: "/run/netns/p", IPCNSPath: "/run/ipc/p",
				HostNetwork: hostNet, HostIPC: mode&1 != 0, HostPID: mode&2 != 0, CgroupParent: parent},
			CgroupDriver:      []cgroups.Driver{cgroups.Cgroupfs, cgroups.Systemd}[mode>>2&1],
			ImageVolumes:      []string{ImageVolumesMkdir, ImageVolumesBind, ImageVolumesIgnore, ""}[mode>>3&3],
			VolumeDir:         volDir,
			RecursiveReadOnly: mode&32 != 0,
			Host:              &HostInfo{OOMScoreAdjMin: int(mode>>6) - 1, DevDir: devDir, MountInfoPath: "/proc/self/mountinfo"},
		}
		if mode&128 != 0 {
			in.Sandbox.PIDNSPath = "/proc/1/ns/pid"
		}
		res, err := GenerateSpec(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		checkSpecInvariants(t, in, res)
	})
}

func checkSpecInvariants(t *testing.T, in SpecInput, res *Result) {
	s := res.Spec
	if len(s.Process.Args) == 0 || s.Process.Args[0] == "" {
		t.Fatal("empty command accepted")
	}
	if s.Process.Rlimits != nil {
		t.Fatal("rlimits set")
	}
	if !path.IsAbs(s.Process.Cwd) {
		t.Fatalf("cwd %q", s.Process.Cwd)
	}
	if s.Linux.CgroupsPath == "" {
		t.Fatal("no cgroups path")
	}
	if s.Process.OOMScoreAdj == nil || *s.Process.OOMScoreAdj < in.Host.OOMScoreAdjMin || *s.Process.OOMScoreAdj > 1000 {
		t.Fatalf("oom_score_adj %v", s.Process.OOMScoreAdj)
	}
	for _, m := range s.Mounts {
		if !path.IsAbs(m.Destination) || hasDotDot(m.Destination) {
			t.Fatalf("mount destination %q", m.Destination)
		}
	}
	for _, c := range s.Process.Capabilities.Bounding {
		if _, err := normalizeCap(c); err != nil {
			t.Fatalf("capability %q", c)
		}
	}
	if s.Process.User.UID != res.User.UID || s.Process.User.GID != res.User.GID {
		t.Fatal("spec user differs from the resolved user")
	}
	if in.Config.GetLinux().GetSecurityContext().GetPrivileged() && (s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil) {
		t.Fatal("privileged container is confined")
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatalf("spec does not marshal: %v", err)
	}
}

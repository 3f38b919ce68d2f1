package nri

import (
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/criserver/criserver/oci"
)

func baseSpec() *specs.Spec {
	adj := 0
	return &specs.Spec{
		Process: &specs.Process{
			Args:        []string{"sh"},
			Env:         []string{"PATH=/bin", "KEEP=1", "DROP=1"},
			OOMScoreAdj: &adj,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/data", Type: "bind", Source: "/old"},
		},
		Annotations: map[string]string{"keep": "1", "drop": "1"},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{},
			Devices:   []specs.LinuxDevice{{Path: "/dev/gone", Type: "c", Major: 1, Minor: 9}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func TestApplyAdjustment(t *testing.T) {
	host := &oci.HostInfo{OOMScoreAdjMin: -100}
	tests := []struct {
		name  string
		adj   func(a *api.ContainerAdjustment)
		check func(t *testing.T, s *specs.Spec)
	}{
		{
			name: "env: add, replace, remove",
			adj: func(a *api.ContainerAdjustment) {
				a.AddEnv("NEW", "v")
				a.AddEnv("KEEP", "2")
				a.RemoveEnv("DROP")
			},
			check: func(t *testing.T, s *specs.Spec) {
				want := []string{"PATH=/bin", "KEEP=2", "NEW=v"}
				if !reflect.DeepEqual(s.Process.Env, want) {
					t.Errorf("env = %v, want %v", s.Process.Env, want)
				}
			},
		},
		{
			name: "annotations: add and remove",
			adj: func(a *api.ContainerAdjustment) {
				a.AddAnnotation("new", "v")
				a.RemoveAnnotation("drop")
			},
			check: func(t *testing.T, s *specs.Spec) {
				want := map[string]string{"keep": "1", "new": "v"}
				if !reflect.DeepEqual(s.Annotations, want) {
					t.Errorf("annotations = %v, want %v", s.Annotations, want)
				}
			},
		},
		{
			name: "mounts: replace by destination, add, sorted parents first",
			adj: func(a *api.ContainerAdjustment) {
				a.AddMount(&api.Mount{Destination: "/data", Type: "bind", Source: "/new", Options: []string{"rbind", "ro"}})
				a.AddMount(&api.Mount{Destination: "/a/b/c", Type: "tmpfs", Source: "tmpfs"})
				a.AddMount(&api.Mount{Destination: "/x", Type: "tmpfs", Source: "tmpfs"})
			},
			check: func(t *testing.T, s *specs.Spec) {
				var got []string
				for _, m := range s.Mounts {
					got = append(got, m.Destination+"="+m.Source)
				}
				want := []string{"/proc=proc", "/data=/new", "/x=tmpfs", "/a/b/c=tmpfs"}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("mounts = %v, want %v", got, want)
				}
			},
		},
		{
			name: "mounts: remove",
			adj:  func(a *api.ContainerAdjustment) { a.RemoveMount("/data") },
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Mounts) != 1 || s.Mounts[0].Destination != "/proc" {
					t.Errorf("mounts = %v, want only /proc", s.Mounts)
				}
			},
		},
		{
			name: "devices: add with a cgroup rule, remove",
			adj: func(a *api.ContainerAdjustment) {
				a.AddDevice(&api.LinuxDevice{Path: "/dev/nri", Type: "c", Major: 1, Minor: 3, FileMode: api.FileMode(0o666)})
				a.RemoveDevice("/dev/gone")
			},
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/nri" || s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 {
					t.Fatalf("devices = %+v, want /dev/nri 1:3 only", s.Linux.Devices)
				}
				rules := s.Linux.Resources.Devices
				if len(rules) != 1 || !rules[0].Allow || rules[0].Type != "c" || *rules[0].Major != 1 || *rules[0].Minor != 3 || rules[0].Access != "rw" {
					t.Errorf("device rules = %+v, want allow c 1:3 rw", rules)
				}
			},
		},
		{
			name: "resources: set fields overlay, unset fields stay",
			adj: func(a *api.ContainerAdjustment) {
				a.SetLinuxMemoryLimit(64 << 20)
				a.SetLinuxCPUShares(512)
				a.SetLinuxCPUSetCPUs("0")
				a.SetLinuxPidLimits(100)
				a.AddLinuxUnified("memory.high", "max")
			},
			check: func(t *testing.T, s *specs.Spec) {
				r := s.Linux.Resources
				if r.Memory == nil || r.Memory.Limit == nil || *r.Memory.Limit != 64<<20 {
					t.Errorf("memory = %+v, want limit 64Mi", r.Memory)
				}
				if r.CPU == nil || r.CPU.Shares == nil || *r.CPU.Shares != 512 || r.CPU.Cpus != "0" || r.CPU.Quota != nil {
					t.Errorf("cpu = %+v, want shares 512, cpus 0, no quota", r.CPU)
				}
				if r.Pids == nil || r.Pids.Limit == nil || *r.Pids.Limit != 100 {
					t.Errorf("pids = %+v, want 100", r.Pids)
				}
				if r.Unified["memory.high"] != "max" {
					t.Errorf("unified = %v", r.Unified)
				}
			},
		},
		{
			name: "oom_score_adj clamped to what the host allows",
			adj:  func(a *api.ContainerAdjustment) { a.SetLinuxOomScoreAdj(ptr(-500)) },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != -100 {
					t.Errorf("oom_score_adj = %d, want -100", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "OCI hooks appended",
			adj: func(a *api.ContainerAdjustment) {
				a.AddHooks(&api.Hooks{
					CreateRuntime: []*api.Hook{{Path: "/bin/true", Args: []string{"true", "cr"}}},
					Poststop:      []*api.Hook{{Path: "/bin/true", Timeout: api.Int(5)}},
				})
			},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Hooks == nil || len(s.Hooks.CreateRuntime) != 1 || s.Hooks.CreateRuntime[0].Args[1] != "cr" ||
					len(s.Hooks.Poststop) != 1 || *s.Hooks.Poststop[0].Timeout != 5 {
					t.Errorf("hooks = %+v", s.Hooks)
				}
			},
		},
		{
			name: "args replaced; a leading empty marker is dropped",
			adj:  func(a *api.ContainerAdjustment) { a.UpdateArgs([]string{"sleep", "1"}) },
			check: func(t *testing.T, s *specs.Spec) {
				if !reflect.DeepEqual(s.Process.Args, []string{"sleep", "1"}) {
					t.Errorf("args = %v", s.Process.Args)
				}
			},
		},
		{
			name: "sysctls set",
			adj:  func(a *api.ContainerAdjustment) { a.SetLinuxSysctl("net.ipv4.ip_forward", "1") },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" {
					t.Errorf("sysctl = %v", s.Linux.Sysctl)
				}
			},
		},
		{
			name: "empty messages of kinds no plugin set are accepted",
			adj: func(a *api.ContainerAdjustment) {
				a.Linux = &api.LinuxContainerAdjustment{
					Rdt: &api.LinuxRdt{}, Scheduler: &api.LinuxScheduler{}, MemoryPolicy: &api.LinuxMemoryPolicy{},
					Resources: &api.LinuxResources{Memory: &api.LinuxMemory{}, Cpu: &api.LinuxCPU{}},
				}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if r := s.Linux.Resources; r.Memory == nil || r.Memory.Limit != nil || r.CPU == nil || r.CPU.Shares != nil {
					t.Errorf("resources = %+v, want empty memory and cpu", r)
				}
			},
		},
		{
			name: "rlimits never reach the spec",
			adj:  func(a *api.ContainerAdjustment) { a.AddRlimit("RLIMIT_NOFILE", 1024, 512) },
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Process.Rlimits) != 0 {
					t.Errorf("rlimits = %v, want none", s.Process.Rlimits)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &api.ContainerAdjustment{}
			tc.adj(a)
			s := baseSpec()
			if err := ApplyAdjustment(s, a, host); err != nil {
				t.Fatalf("ApplyAdjustment: %v", err)
			}
			tc.check(t, s)
		})
	}
}

func TestApplyAdjustmentRefusesUnsupported(t *testing.T) {
	host := &oci.HostInfo{}
	tests := []struct {
		name string
		adj  func(a *api.ContainerAdjustment)
		want string
	}{
		{"CDI devices", func(a *api.ContainerAdjustment) { a.AddCDIDevice(&api.CDIDevice{Name: "vendor.com/gpu=0"}) }, "CDI devices"},
		{"namespaces", func(a *api.ContainerAdjustment) {
			a.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "network", Path: "/proc/1/ns/net"})
		}, "namespaces"},
		{"cgroups path", func(a *api.ContainerAdjustment) { a.SetLinuxCgroupsPath("/elsewhere") }, "cgroups path"},
		{"block I/O class", func(a *api.ContainerAdjustment) { a.SetLinuxBlockIOClass("slow") }, "block I/O class"},
		{"seccomp", func(a *api.ContainerAdjustment) {
			a.SetLinuxSeccompPolicy(&api.LinuxSeccomp{DefaultAction: "SCMP_ACT_ALLOW"})
		}, "seccomp policy"},
		{"RDT", func(a *api.ContainerAdjustment) { a.SetLinuxRDTClosID("gold") }, "RDT"},
		{"out-of-range oom_score_adj", func(a *api.ContainerAdjustment) { a.SetLinuxOomScoreAdj(ptr(5000)) }, "outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &api.ContainerAdjustment{}
			tc.adj(a)
			s := baseSpec()
			err := ApplyAdjustment(s, a, host)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ApplyAdjustment = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestApplyNilAdjustmentChangesNothing(t *testing.T) {
	s := baseSpec()
	if err := ApplyAdjustment(s, nil, &oci.HostInfo{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, baseSpec()) {
		t.Errorf("spec changed by a nil adjustment")
	}
}

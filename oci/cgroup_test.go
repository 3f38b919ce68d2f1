package oci

import (
	"reflect"
	"testing"

	"github.com/criserver/criserver/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestResources(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	i64p := func(v int64) *int64 { return &v }
	tests := []struct {
		name    string
		r       *runtime.LinuxContainerResources
		floor   int
		noHuge  bool
		check   func(t *testing.T, s *specs.Spec)
		wantErr string
	}{
		{name: "none", r: nil, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Resources.CPU != nil || s.Linux.Resources.Memory != nil || *s.Process.OOMScoreAdj != 0 {
				t.Errorf("resources = %+v", s.Linux.Resources)
			}
		}},
		{name: "cpu and memory", r: &runtime.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000,
			CpusetCpus: "0-1", CpusetMems: "0", MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 128 << 20, OomScoreAdj: 500},
			check: func(t *testing.T, s *specs.Spec) {
				want := &specs.LinuxCPU{Shares: u64(512), Quota: i64p(50000), Period: u64(100000), Cpus: "0-1", Mems: "0"}
				if !reflect.DeepEqual(s.Linux.Resources.CPU, want) {
					t.Errorf("cpu = %+v", s.Linux.Resources.CPU)
				}
				m := s.Linux.Resources.Memory
				if *m.Limit != 64<<20 || *m.Swap != 128<<20 {
					t.Errorf("memory = %+v", m)
				}
				if *s.Process.OOMScoreAdj != 500 {
					t.Errorf("oom = %d", *s.Process.OOMScoreAdj)
				}
			}},
		{name: "hugepages and unified", r: &runtime.LinuxContainerResources{
			HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
			Unified:        map[string]string{"memory.high": "1000000"}},
			check: func(t *testing.T, s *specs.Spec) {
				if !reflect.DeepEqual(s.Linux.Resources.HugepageLimits, []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}) {
					t.Errorf("hugepages = %+v", s.Linux.Resources.HugepageLimits)
				}
				if s.Linux.Resources.Unified["memory.high"] != "1000000" {
					t.Errorf("unified = %v", s.Linux.Resources.Unified)
				}
			}},
		{name: "hugepages without hugetlb controller", noHuge: true, r: &runtime.LinuxContainerResources{
			HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 0}, {PageSize: "1GB", Limit: 0}}},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Resources.HugepageLimits != nil {
					t.Errorf("hugepages = %+v, want none", s.Linux.Resources.HugepageLimits)
				}
			}},
		{name: "negative oom clamped to the floor", floor: 0, r: &runtime.LinuxContainerResources{OomScoreAdj: -998},
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != 0 {
					t.Errorf("oom = %d, want clamp to 0", *s.Process.OOMScoreAdj)
				}
			}},
		{name: "oom above a negative floor kept", floor: -500, r: &runtime.LinuxContainerResources{OomScoreAdj: -100},
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != -100 {
					t.Errorf("oom = %d", *s.Process.OOMScoreAdj)
				}
			}},
		{name: "oom out of range", r: &runtime.LinuxContainerResources{OomScoreAdj: 1001}, wantErr: "oom_score_adj"},
		{name: "negative memory", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: -1}, wantErr: "negative"},
		{name: "swap below memory", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 100, MemorySwapLimitInBytes: 50}, wantErr: "swap"},
		{name: "bad cpuset", r: &runtime.LinuxContainerResources{CpusetCpus: "0-a"}, wantErr: "cpuset_cpus"},
		{name: "bad page size", r: &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2XB"}}}, wantErr: "hugepage"},
		{name: "bad unified key", r: &runtime.LinuxContainerResources{Unified: map[string]string{"../x": "1"}}, wantErr: "unified"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(t)
			in.Host.OOMScoreAdjMin = tc.floor
			in.Host.Hugetlb = !tc.noHuge
			in.Config.Linux.Resources = tc.r
			res, err := GenerateSpec(in)
			if tc.wantErr != "" {
				mustInvalid(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, res.Spec)
		})
	}
}

func TestGenerateSpecSystemdCgroup(t *testing.T) {
	in := testInput(t)
	in.CgroupDriver = cgroups.Systemd
	in.Sandbox.CgroupParent = "kubepods-pod1.slice"
	if got := mustGenerate(t, in).Spec.Linux.CgroupsPath; got != "kubepods-pod1.slice:criserver:c1" {
		t.Fatalf("cgroupsPath = %q", got)
	}
	in.Sandbox.CgroupParent = "/kubepods/pod1"
	_, err := GenerateSpec(in)
	mustInvalid(t, err, "slice")
}

func TestResourcesForUpdate(t *testing.T) {
	res, err := Resources(nil, HostInfo{})
	if err != nil || !reflect.DeepEqual(res, &specs.LinuxResources{}) {
		t.Fatalf("nil resources = %+v, %v", res, err)
	}
	res, err = Resources(&runtime.LinuxContainerResources{CpuQuota: 20000, MemoryLimitInBytes: 1 << 20, OomScoreAdj: 5}, HostInfo{})
	if err != nil || *res.CPU.Quota != 20000 || *res.Memory.Limit != 1<<20 || res.Devices != nil {
		t.Fatalf("resources = %+v, %v", res, err)
	}
	if _, err := Resources(&runtime.LinuxContainerResources{CpuShares: -1}, HostInfo{}); err == nil {
		t.Fatal("negative shares accepted")
	}
}

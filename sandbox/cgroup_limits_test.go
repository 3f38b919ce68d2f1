package sandbox

import (
	"testing"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodLimits(t *testing.T) {
	for _, tc := range []struct {
		name          string
		res, overhead *runtime.LinuxContainerResources
		want          *runtime.LinuxContainerResources
	}{
		{name: "no overhead", res: &runtime.LinuxContainerResources{CpuShares: 102, MemoryLimitInBytes: 100 << 20},
			want: &runtime.LinuxContainerResources{CpuShares: 102, MemoryLimitInBytes: 100 << 20}},
		{name: "no resources", overhead: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1}},
		{name: "both limited, the PodOverhead spec's pod",
			res:      &runtime.LinuxContainerResources{CpuShares: 102, CpuPeriod: 100000, CpuQuota: 10000, MemoryLimitInBytes: 100 << 20},
			overhead: &runtime.LinuxContainerResources{CpuShares: 204, CpuPeriod: 100000, CpuQuota: 20000, MemoryLimitInBytes: 140 << 20},
			want:     &runtime.LinuxContainerResources{CpuShares: 306, CpuPeriod: 100000, CpuQuota: 30000, MemoryLimitInBytes: 240 << 20}},
		{name: "overhead quota in another period",
			res:      &runtime.LinuxContainerResources{CpuPeriod: 50000, CpuQuota: 5000},
			overhead: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 20000},
			want:     &runtime.LinuxContainerResources{CpuPeriod: 50000, CpuQuota: 15000}},
		{name: "unlimited stays unlimited",
			res:      &runtime.LinuxContainerResources{CpuShares: 2, CpuQuota: -1},
			overhead: &runtime.LinuxContainerResources{CpuShares: 204, CpuQuota: 20000, MemoryLimitInBytes: 140 << 20},
			want:     &runtime.LinuxContainerResources{CpuShares: 206, CpuQuota: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before *runtime.LinuxContainerResources
			if tc.res != nil {
				before = proto.Clone(tc.res).(*runtime.LinuxContainerResources)
			}
			got := podLimits(tc.res, tc.overhead)
			if !proto.Equal(got, tc.want) {
				t.Errorf("podLimits = %v, want %v", got, tc.want)
			}
			if tc.res != nil && !proto.Equal(tc.res, before) {
				t.Errorf("podLimits changed its argument: %v", tc.res)
			}
		})
	}
}

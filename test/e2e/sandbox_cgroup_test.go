package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/test/e2e/framework"
)

// TestPodCgroupLimitsAndOverhead: the kubelet sends a pod's resources
// without its overhead and sets the limits of its own pod cgroup itself
// (overhead included), so the daemon leaves a pod cgroup it did not make
// alone, at RunPodSandbox and at UpdatePodSandboxResources; a pod cgroup
// it makes gets the resources plus the overhead.
func TestPodCgroupLimitsAndOverhead(t *testing.T) {
	d := framework.StartDaemon(t)
	res := &runtime.LinuxContainerResources{CpuShares: 102, CpuPeriod: 100000, CpuQuota: 10000, MemoryLimitInBytes: 100 << 20}
	overhead := &runtime.LinuxContainerResources{CpuShares: 204, CpuPeriod: 100000, CpuQuota: 20000, MemoryLimitInBytes: 140 << 20}
	limits := func(parent string) (quota, mem string) {
		t.Helper()
		rel := cgroups.RelPath(parent)
		q, err1 := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", rel, "cpu.cfs_quota_us"))
		m, err2 := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", rel, "memory.limit_in_bytes"))
		if err1 != nil || err2 != nil {
			t.Fatalf("read limits of %s: %v, %v", parent, err1, err2)
		}
		return strings.TrimSpace(string(q)), strings.TrimSpace(string(m))
	}
	update := func(id string, memory int64) {
		t.Helper()
		r := &runtime.LinuxContainerResources{CpuShares: 102, CpuPeriod: 100000, CpuQuota: 10000, MemoryLimitInBytes: memory}
		if _, err := d.Runtime.UpdatePodSandboxResources(framework.Ctx(t), &runtime.UpdatePodSandboxResourcesRequest{
			PodSandboxId: id, Overhead: overhead, Resources: r,
		}); err != nil {
			t.Fatalf("UpdatePodSandboxResources: %v", err)
		}
	}

	// The daemon's own pod cgroup: resources plus overhead.
	own := d.PodConfig(t, "own-cgroup")
	own.Linux.Resources, own.Linux.Overhead = res, overhead
	ownID := runPod(t, d, own)
	_, ownInfo := podStatus(t, d, ownID)
	if q, m := limits(ownInfo.CgroupParent); q != "30000" || m != fmt.Sprint(240<<20) {
		t.Errorf("pod cgroup made by the daemon: quota %s, memory %s; want 30000, %d", q, m, 240<<20)
	}
	update(ownID, 200<<20)
	if _, m := limits(ownInfo.CgroupParent); m != fmt.Sprint(340<<20) {
		t.Errorf("after UpdatePodSandboxResources: memory %s, want %d", m, 340<<20)
	}

	// The kubelet's pod cgroup, made and limited before RunPodSandbox.
	parent := fmt.Sprintf("/criserver-e2e-kubelet-%d/podkubelet", time.Now().UnixNano())
	rel := cgroups.RelPath(parent)
	quota, period, mem := int64(30000), uint64(100000), int64(240<<20)
	if err := cgroups.Create(rel, &specs.LinuxResources{
		CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}, Memory: &specs.LinuxMemory{Limit: &mem},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cgroups.Delete(rel); err != nil {
			t.Errorf("delete the test's pod cgroup: %v", err)
		}
		_ = cgroups.Delete(filepath.Dir(rel))
	})
	kub := d.PodConfig(t, "kubelet-cgroup")
	kub.Linux.CgroupParent, kub.Linux.Resources, kub.Linux.Overhead = parent, res, overhead
	kubID := runPod(t, d, kub)
	want := func(when string) {
		t.Helper()
		if q, m := limits(parent); q != "30000" || m != fmt.Sprint(240<<20) {
			t.Errorf("%s: the kubelet's pod cgroup has quota %s, memory %s; want its own 30000, %d", when, q, m, 240<<20)
		}
	}
	want("after RunPodSandbox")
	update(kubID, 200<<20)
	want("after UpdatePodSandboxResources")

	for _, id := range []string{ownID, kubID} {
		stopRemovePod(t, d, id)
	}
	if !cgroups.Exists(rel) {
		t.Errorf("removing the pod removed the kubelet's pod cgroup %s", parent)
	}
}

package cri

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/podmetrics"
	"github.com/criserver/criserver/sandbox"
)

// Cgroup samples and the usage of running containers' writable layers are
// refreshed in the background every statsRefreshInterval, so stats calls
// answer from memory: reading one cgroup v1 costs about half a
// millisecond and walking a writable layer more, too much to do for
// hundreds of containers inside one ListContainerStats. A figure older
// than statsMaxAge (the refresher is behind, or the container just
// started) is measured on demand.
const (
	statsRefreshInterval = 5 * time.Second
	statsMaxAge          = 2 * statsRefreshInterval
)

// metricsIdle is how long after a metrics call the refresher keeps
// reading the metric families' figures. The kubelet asks on each scrape
// of /metrics/cadvisor; with no one asking, samples hold only what the
// CRI stats calls need.
const metricsIdle = 5 * time.Minute

// statsCache keeps the last two samples of each cgroup, the previous one
// to turn cumulative CPU time into a rate (usage_nano_cores).
type statsCache struct {
	// extra is what a sample for the metrics calls reads beyond the CRI
	// stats' figures: what the config's metric families need (podmetrics).
	extra cgroups.Extra
	// network tells that such a pod sample includes the pod's interfaces.
	network bool
	// metricsAt is when a metrics call last came (Unix nanoseconds).
	metricsAt atomic.Int64

	mu      sync.Mutex
	samples map[string]*cgroupSample // by container or pod ID
}

type cgroupSample struct {
	cur       *cgroups.Stats
	nanoCores uint64
	hasRate   bool
	// forMetrics tells that the sample holds the metric families'
	// figures (extra, and for a pod net).
	forMetrics bool
	net        []podmetrics.NetInterface
	netRead    bool
}

func newStatsCache(families podmetrics.Families) *statsCache {
	return &statsCache{
		extra:   families.CgroupExtra(),
		network: families.Has(podmetrics.Network),
		samples: map[string]*cgroupSample{},
	}
}

// metricsAsked records a metrics call.
func (sc *statsCache) metricsAsked() { sc.metricsAt.Store(time.Now().UnixNano()) }

// metricsWanted tells the refresher to read the metric families' figures:
// a metrics call came within metricsIdle.
func (sc *statsCache) metricsWanted() bool {
	return time.Since(time.Unix(0, sc.metricsAt.Load())) < metricsIdle
}

func (sc *statsCache) forget(id string) {
	sc.mu.Lock()
	delete(sc.samples, id)
	sc.mu.Unlock()
}

// keepOnly drops the samples of containers and pods no longer running.
func (sc *statsCache) keepOnly(live map[string]bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for id := range sc.samples {
		if !live[id] {
			delete(sc.samples, id)
		}
	}
}

// get returns a fresh enough sample of the cgroup, reading it if needed;
// forMetrics asks for the metric families' figures too. netPID is, for a
// pod, a process in its network namespace (0: none).
func (sc *statsCache) get(id, cgroupsPath string, netPID int, forMetrics bool) (cgroupSample, error) {
	sc.mu.Lock()
	prev := sc.samples[id]
	fresh := prev != nil && time.Since(prev.cur.Timestamp) < statsMaxAge
	if forMetrics && fresh {
		// A sample without the figures (none was asked for lately), or of
		// a pod that had no process yet, is read again.
		missingNet := sc.network && netPID > 0 && !prev.netRead
		fresh = prev.forMetrics && !missingNet
	}
	if fresh {
		s := *prev
		sc.mu.Unlock()
		return s, nil
	}
	sc.mu.Unlock()
	return sc.read(id, cgroupsPath, netPID, forMetrics)
}

// read samples the cgroup now, with the metric families' figures (and
// the pod's interfaces, when netPID is set) if forMetrics, and keeps the
// sample.
func (sc *statsCache) read(id, cgroupsPath string, netPID int, forMetrics bool) (cgroupSample, error) {
	sc.mu.Lock()
	prev := sc.samples[id]
	sc.mu.Unlock()
	var extra cgroups.Extra
	if forMetrics {
		extra = sc.extra
	}
	cur, err := cgroups.ReadStats(cgroupsPath, extra)
	if err != nil {
		return cgroupSample{}, err
	}
	next := &cgroupSample{cur: cur, forMetrics: forMetrics}
	if forMetrics && sc.network && netPID > 0 {
		if next.net, err = readNetDev(netPID); err == nil {
			next.netRead = true
		} else {
			klog.V(4).InfoS("No network counters", "id", id, "pid", netPID, "err", err)
		}
	}
	if prev != nil {
		if dt := cur.Timestamp.Sub(prev.cur.Timestamp); dt > 0 && cur.CPUUsageNanos >= prev.cur.CPUUsageNanos {
			next.nanoCores = uint64(float64(cur.CPUUsageNanos-prev.cur.CPUUsageNanos) / dt.Seconds())
			next.hasRate = true
		}
	}
	sc.mu.Lock()
	sc.samples[id] = next
	sc.mu.Unlock()
	return *next, nil
}

// refreshStats samples every running container and ready pod each
// statsRefreshInterval until ctx ends.
func (s *Service) refreshStats(ctx context.Context) {
	s.measureWritableLayers(ctx)
	t := time.NewTicker(statsRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		live := map[string]bool{}
		forMetrics := s.stats.metricsWanted()
		for _, c := range s.containers.list() {
			if c.State() == runtime.ContainerState_CONTAINER_RUNNING {
				live[c.ID] = true
				if sample, err := s.stats.read(c.ID, c.CgroupsPath, 0, forMetrics); err == nil {
					s.blockDevs.learn(sample.cur.IO)
				}
				s.measureWritableLayer(c.ID)
			}
		}
		if s.opts.Sandboxes != nil {
			for _, sb := range s.opts.Sandboxes.List() {
				if sb.State == sandbox.StateReady && sb.CgroupParent != "" {
					live[sb.ID] = true
					_, _ = s.stats.read(sb.ID, sb.CgroupParent, s.podNetPID(sb), forMetrics)
				}
			}
		}
		s.stats.keepOnly(live)
		if forMetrics && s.opts.PodMetrics.Has(podmetrics.Disk) {
			s.layerFS.refresh()
		}
	}
}

// measureWritableLayers measures every container's writable layer once, so
// that ImageFsInfo, which sums the last measurements, is right after a
// restart before any stats call has come; the rounds then measure the
// running containers' layers, the only ones that change.
func (s *Service) measureWritableLayers(ctx context.Context) {
	for _, c := range s.containers.list() {
		if ctx.Err() != nil {
			return
		}
		s.measureWritableLayer(c.ID)
	}
}

func (s *Service) measureWritableLayer(id string) {
	if s.opts.Images == nil {
		return
	}
	if _, err := s.opts.Images.MeasureRootfs(id); err != nil {
		klog.V(4).InfoS("No writable layer usage for container", "containerID", id, "err", err)
	}
}

func u64(v uint64) *runtime.UInt64Value { return &runtime.UInt64Value{Value: v} }

func cpuUsage(s cgroupSample) *runtime.CpuUsage {
	u := &runtime.CpuUsage{Timestamp: s.cur.Timestamp.UnixNano(), UsageCoreNanoSeconds: u64(s.cur.CPUUsageNanos)}
	if s.hasRate {
		u.UsageNanoCores = u64(s.nanoCores)
	}
	return u
}

func memoryUsage(s cgroupSample) *runtime.MemoryUsage {
	return &runtime.MemoryUsage{
		Timestamp:       s.cur.Timestamp.UnixNano(),
		WorkingSetBytes: u64(s.cur.MemoryWorkingSet),
		UsageBytes:      u64(s.cur.MemoryUsage),
		RssBytes:        u64(s.cur.MemoryRSS),
		PageFaults:      u64(s.cur.PageFaults),
		MajorPageFaults: u64(s.cur.MajorPageFaults),
	}
}

// containerStats reads the stats of one container; nil without error for
// a container whose cgroup is gone (not running).
func (s *Service) containerStats(c *containerRecord) (*runtime.ContainerStats, error) {
	md := c.Config.GetMetadata()
	st := &runtime.ContainerStats{
		Attributes: &runtime.ContainerAttributes{
			Id: c.ID, Metadata: md, Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
		},
	}
	if c.State() == runtime.ContainerState_CONTAINER_RUNNING {
		sample, err := s.stats.get(c.ID, c.CgroupsPath, 0, false)
		if err != nil {
			klog.V(4).InfoS("No cgroup stats for container", "containerID", c.ID, "err", err)
		} else {
			st.Cpu, st.Memory = cpuUsage(sample), memoryUsage(sample)
		}
	}
	now := time.Now().UnixNano()
	st.WritableLayer = &runtime.FilesystemUsage{Timestamp: now, FsId: &runtime.FilesystemIdentifier{Mountpoint: s.writableLayerDir()}}
	if bytes, inodes, err := s.opts.Images.RootfsUsage(c.ID, statsMaxAge); err == nil {
		st.WritableLayer.UsedBytes, st.WritableLayer.InodesUsed = u64(bytes), u64(inodes)
	} else {
		klog.V(4).InfoS("No writable layer usage for container", "containerID", c.ID, "err", err)
	}
	return st, nil
}

// writableLayerDir is where the image store keeps writable layers; ""
// without a store.
func (s *Service) writableLayerDir() string {
	if s.opts.Images == nil {
		return ""
	}
	return s.opts.Images.RootfsDir()
}

// ContainerStats implements runtime.RuntimeServiceServer.
func (s *Service) ContainerStats(_ context.Context, req *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st, err := s.containerStats(c)
	if err != nil {
		return nil, err
	}
	return &runtime.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats implements runtime.RuntimeServiceServer.
func (s *Service) ListContainerStats(_ context.Context, req *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	var out []*runtime.ContainerStats
	for _, c := range s.containers.list() {
		if f != nil && !matchContainer(c, &runtime.ContainerFilter{Id: f.GetId(), PodSandboxId: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()}) {
			continue
		}
		st, err := s.containerStats(c)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return &runtime.ListContainerStatsResponse{Stats: out}, nil
}

// PodSandboxStats implements runtime.RuntimeServiceServer.
func (s *Service) PodSandboxStats(_ context.Context, req *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	sb, err := s.opts.Sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st, err := s.podStats(sb)
	if err != nil {
		return nil, err
	}
	return &runtime.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats implements runtime.RuntimeServiceServer.
func (s *Service) ListPodSandboxStats(_ context.Context, req *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	var out []*runtime.PodSandboxStats
	for _, sb := range s.opts.Sandboxes.List() {
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) {
			continue
		}
		if !matchLabels(sb.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		st, err := s.podStats(sb)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return &runtime.ListPodSandboxStatsResponse{Stats: out}, nil
}

// podStats sums a pod: its cgroup, its network namespace as seen by one of
// its processes, and its containers.
func (s *Service) podStats(sb *sandbox.Sandbox) (*runtime.PodSandboxStats, error) {
	md := sb.Metadata()
	st := &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{Id: sb.ID, Metadata: md, Labels: sb.Config.GetLabels(), Annotations: sb.Config.GetAnnotations()},
		Linux:      &runtime.LinuxPodSandboxStats{},
	}
	if sb.State == sandbox.StateReady && sb.CgroupParent != "" {
		if sample, err := s.stats.get(sb.ID, sb.CgroupParent, 0, false); err == nil {
			st.Linux.Cpu, st.Linux.Memory = cpuUsage(sample), memoryUsage(sample)
			st.Linux.Process = &runtime.ProcessUsage{Timestamp: sample.cur.Timestamp.UnixNano(), ProcessCount: u64(sample.cur.Pids)}
		} else {
			klog.V(4).InfoS("No cgroup stats for pod", "podID", sb.ID, "err", err)
		}
	}
	for _, c := range s.containers.byPod(sb.ID) {
		cs, err := s.containerStats(c)
		if err != nil {
			return nil, err
		}
		st.Linux.Containers = append(st.Linux.Containers, cs)
	}
	if pid := s.podNetPID(sb); pid > 0 {
		if nu, err := netUsage(pid); err == nil {
			st.Linux.Network = nu
		} else {
			klog.V(4).InfoS("No network stats for pod", "podID", sb.ID, "err", err)
		}
	}
	return st, nil
}

// podNetPID is a process in the pod's network namespace: the infra
// process, else a running container's; 0 for a pod on the host's network
// or with no process.
func (s *Service) podNetPID(sb *sandbox.Sandbox) int {
	if sb.HostNetwork {
		return 0
	}
	if sb.InfraPID > 0 {
		return sb.InfraPID
	}
	for _, c := range s.containers.byPod(sb.ID) {
		if p := c.Pid(); p > 0 && c.State() == runtime.ContainerState_CONTAINER_RUNNING {
			return p
		}
	}
	return 0
}

// netUsage is the CRI form of the pod's interfaces.
func netUsage(pid int) (*runtime.NetworkUsage, error) {
	ifaces, err := readNetDev(pid)
	if err != nil {
		return nil, err
	}
	nu := &runtime.NetworkUsage{Timestamp: time.Now().UnixNano()}
	for _, n := range ifaces {
		iface := &runtime.NetworkInterfaceUsage{Name: n.Name, RxBytes: u64(n.RxBytes), RxErrors: u64(n.RxErrors), TxBytes: u64(n.TxBytes), TxErrors: u64(n.TxErrors)}
		nu.Interfaces = append(nu.Interfaces, iface)
		if n.Name == "eth0" || nu.DefaultInterface == nil {
			nu.DefaultInterface = iface
		}
	}
	return nu, nil
}

// readNetDev reads /proc/<pid>/net/dev: the counters of the network
// namespace the process is in. Loopback is left out.
func readNetDev(pid int) ([]podmetrics.NetInterface, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseNetDev(f)
}

func parseNetDev(r io.Reader) ([]podmetrics.NetInterface, error) {
	var out []podmetrics.NetInterface
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" {
			continue
		}
		// receive: bytes packets errs drop fifo frame compressed multicast,
		// then transmit: bytes packets errs drop ...
		fields := strings.Fields(rest)
		if len(fields) < 16 {
			continue
		}
		n := func(i int) uint64 {
			v, _ := strconv.ParseUint(fields[i], 10, 64)
			return v
		}
		out = append(out, podmetrics.NetInterface{
			Name:    name,
			RxBytes: n(0), RxPackets: n(1), RxErrors: n(2), RxDropped: n(3),
			TxBytes: n(8), TxPackets: n(9), TxErrors: n(10), TxDropped: n(11),
		})
	}
	return out, sc.Err()
}

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/test/e2e/framework"
)

// The metered pod: "worker" fills 32 MiB of the pod's /dev/shm (memory
// charged to its cgroup, in its working set) and 8 MiB of its writable
// layer, then spins under a quota of a quarter CPU, so that its CPU time
// grows steadily; "web" serves a 512 KiB file of its writable layer, which
// the test fetches for the pod's network counters.
const (
	meteredPodName  = "metered"
	meteredManifest = `apiVersion: v1
kind: Pod
metadata:
  name: metered
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: worker
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=32 2>/dev/null; dd if=/dev/zero of=/tmp/disk bs=1M count=8 2>/dev/null; sync; touch /filled; while :; do :; done"]
    resources:
      limits: {cpu: 250m, memory: 128Mi}
  - name: web
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "dd if=/dev/zero of=/www/big bs=1024 count=512 2>/dev/null; exec httpd -f -p 8080 -h /www"]
`
	fetches   = 4
	bigFile   = 512 << 10
	shmFill   = 32 << 20
	layerFill = 8 << 20
)

// TestKubeletCadvisorMetricsFromCRI runs a standalone kubelet v1.37 with
// the feature gate PodAndContainerStatsFromCRI against a daemon of its
// own: its /metrics/cadvisor then comes from the CRI metrics calls and its
// /stats/summary from the CRI stats calls, not from cAdvisor. Through the
// kubelet's authenticated API, as a metrics scraper reads them, the
// figures of a static pod must be cAdvisor's families and labels and
// agree with the containers' cgroups, the pod's network namespace and the
// writable layers.
func TestKubeletCadvisorMetricsFromCRI(t *testing.T) {
	framework.Require(t)
	if _, err := os.Stat(filepath.Join(cgroups.Root, "cgroup.controllers")); err == nil {
		t.Skip("the cgroup comparisons read cgroup v1 files; this host runs cgroup v2 alone")
	}
	kubelet := kubeletBinary(t)
	reg := framework.StartRegistry(t)
	reg.Push(t, "busybox", "latest", framework.BusyboxImage(t))
	ref := reg.Ref("busybox", "latest")

	d := startLeakDaemon(t).d
	k := startKubelet(t, kubelet, d, map[string]string{"metered.yaml": fmt.Sprintf(meteredManifest, ref)},
		"PodAndContainerStatsFromCRI")
	worker := waitKubeletContainer(t, d, "worker")
	web := waitKubeletContainer(t, d, "web")
	pod := meteredPodName + "-" + kubeletNode

	waitFilled(t, d, worker.Id)
	fetchBig(t, d, worker.PodSandboxId)
	settled := time.Now()

	m := newMeteredPod(t, d, pod, worker, web)
	first := k.scrapeAfter(t, settled, m)
	m.checkLabels(t, first)

	// CPU time grows between two samples 15 s apart (a quarter CPU: about
	// 4 s); the figures are compared with the host's once it has.
	firstCPU := first.value(t, "container_cpu_usage_seconds_total", m.worker.labels)
	second := k.scrapeAfter(t, first.sampledAt(t, m).Add(15*time.Second), m)
	if cpu := second.value(t, "container_cpu_usage_seconds_total", m.worker.labels); cpu <= firstCPU {
		t.Errorf("worker's cpu usage %v s, 15 s after %v s: it spins, it must grow", cpu, firstCPU)
	}
	m.checkAgainstHost(t, second)
	m.checkSummary(t, k, second)
	m.checkResourceMetrics(t, k, second)
	k.checkNoMetricsErrors(t)

	k.removeManifests(t)
	waitSandboxNotReady(t, d, worker.PodSandboxId)
	k.stop(t)
	removeAllSandboxes(t, d)
	removeAllImages(t, d)
	k.restore(t)
}

// waitFilled waits for the worker to have filled memory and disk.
func waitFilled(t *testing.T, d *framework.Daemon, id string) {
	t.Helper()
	if !framework.Poll(60*time.Second, func() bool {
		r, err := d.Runtime.ExecSync(framework.Ctx(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"test", "-e", "/filled"}, Timeout: 10})
		return err == nil && r.ExitCode == 0
	}) {
		t.Fatal("the worker has not filled /dev/shm and its layer after 60 s")
	}
}

// fetchBig fetches web's file from the pod, fetches times over.
func fetchBig(t *testing.T, d *framework.Daemon, podID string) {
	t.Helper()
	ps, err := d.Runtime.PodSandboxStatus(framework.Ctx(t), &runtime.PodSandboxStatusRequest{PodSandboxId: podID})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ps.Status.GetNetwork().GetIp() + ":8080/big"
	c := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < fetches; i++ {
		var n int64
		framework.Poll(30*time.Second, func() bool {
			resp, err := c.Get(url)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			n, _ = io.Copy(io.Discard, resp.Body)
			return resp.StatusCode == http.StatusOK && n == bigFile
		})
		if n != bigFile {
			t.Fatalf("GET %s: %d bytes, want %d", url, n, bigFile)
		}
	}
	c.CloseIdleConnections()
}

// meteredContainer is one of the pod's containers as the host sees it.
type meteredContainer struct {
	id, cgroup string // cgroup: cAdvisor's id, relative to the hierarchies
	pid        int
	labels     map[string]string
}

type meteredPod struct {
	pod         string
	image       string
	worker, web meteredContainer
}

func newMeteredPod(t *testing.T, d *framework.Daemon, pod string, worker, web *runtime.Container) *meteredPod {
	t.Helper()
	m := &meteredPod{pod: pod}
	for _, c := range []struct {
		ctr *runtime.Container
		to  *meteredContainer
	}{{worker, &m.worker}, {web, &m.web}} {
		st, info := (&ctrEnv{d: d}).status(t, c.ctr.Id)
		*c.to = meteredContainer{id: c.ctr.Id, cgroup: cgroups.RelPath(info.CgroupsPath), pid: info.Pid,
			labels: map[string]string{"container": c.ctr.Metadata.Name, "namespace": "default", "pod": pod}}
		m.image = st.Image.GetImage()
	}
	return m
}

// scrape is one read of /metrics/cadvisor.
type scrape map[string]*dto.MetricFamily

// scrapeAfter reads /metrics/cadvisor, with the client certificate, until
// the metered pod's series come from samples taken after since.
func (k *runningKubelet) scrapeAfter(t *testing.T, since time.Time, m *meteredPod) scrape {
	t.Helper()
	var s scrape
	var last string
	if !framework.Poll(60*time.Second, func() bool {
		code, body, err := k.api.get("/metrics/cadvisor", true)
		if err != nil || code != http.StatusOK {
			last = fmt.Sprintf("%d %v %.500s", code, err, body)
			return false
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		s, err = p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics/cadvisor is not the Prometheus text format: %v", err)
		}
		at, ok := s.oldestSample(m)
		last = fmt.Sprintf("oldest sample of the pod's series %v", at)
		return ok && at.After(since)
	}) {
		t.Fatalf("/metrics/cadvisor has no sample of pod %s newer than %v: %s", m.pod, since, last)
	}
	return s
}

// sampledAt is when the series of the pod were sampled, at the oldest.
func (s scrape) sampledAt(t *testing.T, m *meteredPod) time.Time {
	t.Helper()
	at, ok := s.oldestSample(m)
	if !ok {
		t.Fatal("no sample time")
	}
	return at
}

// meteredSeries are the series whose samples must be fresh: those of the
// containers' cgroups and the pod's network.
var meteredSeries = []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_network_receive_bytes_total"}

func (s scrape) oldestSample(m *meteredPod) (time.Time, bool) {
	var oldest time.Time
	for _, name := range meteredSeries {
		for _, sel := range []map[string]string{m.worker.labels, m.web.labels, {"container": "", "pod": m.pod}} {
			if name == "container_network_receive_bytes_total" && sel["container"] != "" {
				continue
			}
			ms := s.find(name, sel)
			if len(ms) == 0 || ms[0].TimestampMs == nil {
				return time.Time{}, false
			}
			at := time.UnixMilli(ms[0].GetTimestampMs())
			if oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
	}
	return oldest, true
}

// find is the series of family name whose labels include sel.
func (s scrape) find(name string, sel map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, mt := range s[name].GetMetric() {
		if matches(mt, sel) {
			out = append(out, mt)
		}
	}
	return out
}

func matches(mt *dto.Metric, sel map[string]string) bool {
	n := 0
	for _, lp := range mt.GetLabel() {
		if v, ok := sel[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(sel)
}

// value is the one series of name matching sel.
func (s scrape) value(t *testing.T, name string, sel map[string]string) float64 {
	t.Helper()
	ms := s.find(name, sel)
	if len(ms) != 1 {
		t.Errorf("%d series %s%v, want 1", len(ms), name, sel)
		return 0
	}
	if c := ms[0].GetCounter(); c != nil {
		return c.GetValue()
	}
	return ms[0].GetGauge().GetValue()
}

func labelsOf(mt *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range mt.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// checkLabels: the families are cAdvisor's, of cAdvisor's types, and the
// containers' series carry the kubelet's cAdvisor labels.
func (m *meteredPod) checkLabels(t *testing.T, s scrape) {
	t.Helper()
	families := []struct {
		name  string
		typ   dto.MetricType
		extra []string
	}{
		{"container_cpu_usage_seconds_total", dto.MetricType_COUNTER, []string{"cpu"}},
		{"container_cpu_user_seconds_total", dto.MetricType_COUNTER, nil},
		{"container_cpu_system_seconds_total", dto.MetricType_COUNTER, nil},
		{"container_cpu_cfs_periods_total", dto.MetricType_COUNTER, nil},
		{"container_cpu_cfs_throttled_periods_total", dto.MetricType_COUNTER, nil},
		{"container_memory_usage_bytes", dto.MetricType_GAUGE, nil},
		{"container_memory_working_set_bytes", dto.MetricType_GAUGE, nil},
		{"container_memory_rss", dto.MetricType_GAUGE, nil},
		{"container_memory_cache", dto.MetricType_GAUGE, nil},
		{"container_spec_memory_limit_bytes", dto.MetricType_GAUGE, nil},
		{"container_spec_cpu_quota", dto.MetricType_GAUGE, nil},
		{"container_network_receive_bytes_total", dto.MetricType_COUNTER, []string{"interface"}},
		{"container_network_transmit_bytes_total", dto.MetricType_COUNTER, []string{"interface"}},
		{"container_network_receive_packets_total", dto.MetricType_COUNTER, []string{"interface"}},
		{"container_fs_usage_bytes", dto.MetricType_GAUGE, []string{"device"}},
		{"container_fs_limit_bytes", dto.MetricType_GAUGE, []string{"device"}},
		{"container_threads", dto.MetricType_GAUGE, nil},
		{"container_start_time_seconds", dto.MetricType_GAUGE, nil},
		{"container_last_seen", dto.MetricType_GAUGE, nil},
	}
	for _, f := range families {
		mf := s[f.name]
		if mf == nil {
			t.Errorf("/metrics/cadvisor has no %s", f.name)
			continue
		}
		if mf.GetType() != f.typ || mf.GetHelp() == "" {
			t.Errorf("%s is a %v with help %q, want a %v with help", f.name, mf.GetType(), mf.GetHelp(), f.typ)
		}
		for _, mt := range mf.Metric {
			got := labelsOf(mt)
			for _, key := range append([]string{"container", "id", "image", "name", "namespace", "pod"}, f.extra...) {
				if _, ok := got[key]; !ok {
					t.Errorf("%s%v has no label %s", f.name, got, key)
				}
			}
			if len(got) != 6+len(f.extra) {
				t.Errorf("%s%v: labels other than cAdvisor's", f.name, got)
			}
		}
	}
	for _, c := range []meteredContainer{m.worker, m.web} {
		ms := s.find("container_memory_working_set_bytes", c.labels)
		if len(ms) != 1 {
			t.Errorf("%d working set series of %v", len(ms), c.labels)
			continue
		}
		got := labelsOf(ms[0])
		want := map[string]string{"container": c.labels["container"], "id": c.cgroup, "image": m.image, "name": c.id,
			"namespace": "default", "pod": m.pod}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("label %s=%q of %s, want %q", k, got[k], c.labels["container"], v)
			}
		}
	}
}

// checkAgainstHost compares the figures with the host's, read just
// after the scrape.
func (m *meteredPod) checkAgainstHost(t *testing.T, s scrape) {
	t.Helper()
	w := m.worker
	// Memory holds still once filled: within 10% of the cgroup's.
	usage := float64(cgroupFile(t, w.cgroup, "memory", "memory.usage_in_bytes"))
	workingSet := usage - float64(memoryStat(t, w.cgroup)["total_inactive_file"])
	for _, c := range []struct {
		name string
		want float64
	}{{"container_memory_usage_bytes", usage}, {"container_memory_working_set_bytes", workingSet}} {
		got := s.value(t, c.name, w.labels)
		if got < c.want*0.9 || got > c.want*1.1 {
			t.Errorf("worker's %s = %.0f, its cgroup says %.0f", c.name, got, c.want)
		}
	}
	if ws := s.value(t, "container_memory_working_set_bytes", w.labels); ws < shmFill {
		t.Errorf("worker's working set %.0f bytes, below the %d it holds in /dev/shm", ws, shmFill)
	}
	if v := s.value(t, "container_spec_memory_limit_bytes", w.labels); v != 128<<20 {
		t.Errorf("worker's memory limit %.0f, want 128 MiB", v)
	}
	if v := s.value(t, "container_spec_cpu_quota", w.labels); v != float64(cgroupFile(t, w.cgroup, "cpu", "cpu.cfs_quota_us")) || v != 25000 {
		t.Errorf("worker's cpu quota %.0f, want its cgroup's 25000", v)
	}

	// CPU time grows at a quarter CPU at most: the sample, at most
	// 10 s old, is a few seconds behind the cgroup at most.
	cpuNow := float64(cgroupFile(t, w.cgroup, "cpuacct", "cpuacct.usage")) / 1e9
	if got := s.value(t, "container_cpu_usage_seconds_total", w.labels); got > cpuNow || got < cpuNow-4 {
		t.Errorf("worker's cpu usage %.0f s, its cgroup says %.1f s", got, cpuNow)
	}

	// The writable layers hold what the containers wrote.
	for _, c := range []struct {
		ctr  meteredContainer
		want float64
	}{{w, layerFill}, {m.web, bigFile}} {
		ms := s.find("container_fs_usage_bytes", c.ctr.labels)
		if len(ms) != 1 || labelsOf(ms[0])["device"] == "" {
			t.Errorf("container_fs_usage_bytes of %s: %d series, want 1 with a device", c.ctr.labels["container"], len(ms))
			continue
		}
		if got := ms[0].GetGauge().GetValue(); got < c.want || got > c.want+4<<20 {
			t.Errorf("%s's writable layer uses %.0f bytes, it wrote %.0f", c.ctr.labels["container"], got, c.want)
		}
	}

	// The pod's network: its counters only grow, so the sample is at
	// most what the namespace counts now, and at least what the test sent
	// and received.
	rx, tx := netDev(t, w.pid, "eth0")
	podNet := map[string]string{"container": "", "pod": m.pod, "interface": "eth0"}
	gotTx := s.value(t, "container_network_transmit_bytes_total", podNet)
	gotRx := s.value(t, "container_network_receive_bytes_total", podNet)
	if gotTx < fetches*bigFile || gotTx > float64(tx) {
		t.Errorf("pod sent %.0f bytes, want at least the %d fetched, at most the %d counted now", gotTx, fetches*bigFile, tx)
	}
	t.Logf("worker: working set %.0f (cgroup %.0f), cpu %.0f s (cgroup %.1f s); pod eth0: rx %.0f tx %.0f (now %d, %d)",
		s.value(t, "container_memory_working_set_bytes", w.labels), workingSet,
		s.value(t, "container_cpu_usage_seconds_total", w.labels), cpuNow, gotRx, gotTx, rx, tx)
	if gotRx < fetches*50 || gotRx > float64(rx) {
		t.Errorf("pod received %.0f bytes, want at least %d for the requests, at most the %d counted now", gotRx, fetches*50, rx)
	}
}

// memoryStat is a v1 cgroup's memory.stat.
func memoryStat(t *testing.T, rel string) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroups.Root, "memory", rel, "memory.stat"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			out[k], _ = strconv.ParseUint(v, 10, 64)
		}
	}
	return out
}

// netDev is an interface's received and transmitted bytes in pid's
// network namespace.
func netDev(t *testing.T, pid int, name string) (rx, tx uint64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if n, rest, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(n) == name {
			f := strings.Fields(rest)
			if len(f) < 9 {
				break
			}
			rx, _ = strconv.ParseUint(f[0], 10, 64)
			tx, _ = strconv.ParseUint(f[8], 10, 64)
			return rx, tx
		}
	}
	t.Fatalf("no %s in /proc/%d/net/dev", name, pid)
	return 0, 0
}

// summary is the part of the kubelet's /stats/summary the test reads.
type summary struct {
	Node struct {
		NodeName string `json:"nodeName"`
	} `json:"node"`
	Pods []struct {
		PodRef struct {
			Name, Namespace string
		} `json:"podRef"`
		Containers []struct {
			Name string `json:"name"`
			CPU  struct {
				UsageCoreNanoSeconds uint64 `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory struct {
				WorkingSetBytes uint64 `json:"workingSetBytes"`
			} `json:"memory"`
			Rootfs struct {
				UsedBytes uint64 `json:"usedBytes"`
			} `json:"rootfs"`
		} `json:"containers"`
		Network struct {
			RxBytes uint64 `json:"rxBytes"`
			TxBytes uint64 `json:"txBytes"`
		} `json:"network"`
	} `json:"pods"`
}

// checkSummary: /stats/summary, which the kubelet builds from the CRI
// stats calls with the gate, agrees with /metrics/cadvisor.
func (m *meteredPod) checkSummary(t *testing.T, k *runningKubelet, s scrape) {
	t.Helper()
	code, body, err := k.api.get("/stats/summary", true)
	if err != nil || code != http.StatusOK {
		t.Errorf("/stats/summary: %d %v %.1000s", code, err, body)
		return
	}
	var sum summary
	if err := json.Unmarshal([]byte(body), &sum); err != nil {
		t.Fatalf("/stats/summary: %v", err)
	}
	if sum.Node.NodeName != kubeletNode {
		t.Errorf("summary of node %q, want %q", sum.Node.NodeName, kubeletNode)
	}
	found := false
	for _, p := range sum.Pods {
		if p.PodRef.Name != m.pod || p.PodRef.Namespace != "default" {
			continue
		}
		found = true
		if p.Network.TxBytes < fetches*bigFile || float64(p.Network.TxBytes) > s.value(t, "container_network_transmit_bytes_total",
			map[string]string{"container": "", "pod": m.pod, "interface": "eth0"})+(16<<20) {
			t.Errorf("summary: pod sent %d bytes, want at least %d", p.Network.TxBytes, fetches*bigFile)
		}
		for _, c := range p.Containers {
			if c.Name != "worker" {
				continue
			}
			ws := s.value(t, "container_memory_working_set_bytes", m.worker.labels)
			if got := float64(c.Memory.WorkingSetBytes); got < ws*0.9 || got > ws*1.1 {
				t.Errorf("summary: worker's working set %.0f, /metrics/cadvisor says %.0f", got, ws)
			}
			if cpu := s.value(t, "container_cpu_usage_seconds_total", m.worker.labels); float64(c.CPU.UsageCoreNanoSeconds)/1e9 < cpu {
				t.Errorf("summary: worker's cpu %d ns, behind /metrics/cadvisor's earlier %.0f s", c.CPU.UsageCoreNanoSeconds, cpu)
			}
			if c.Rootfs.UsedBytes < layerFill {
				t.Errorf("summary: worker's rootfs uses %d bytes, it wrote %d", c.Rootfs.UsedBytes, layerFill)
			}
		}
	}
	if !found {
		t.Errorf("/stats/summary has no pod %s:\n%.2000s", m.pod, body)
	}
}

// checkResourceMetrics: /metrics/resource, what metrics-server reads,
// which the kubelet builds from the same CRI stats as /stats/summary,
// agrees with /metrics/cadvisor. Its CPU time is in nanoseconds, not
// rounded down to a second.
func (m *meteredPod) checkResourceMetrics(t *testing.T, k *runningKubelet, s scrape) {
	t.Helper()
	code, body, err := k.api.get("/metrics/resource", true)
	if err != nil || code != http.StatusOK {
		t.Errorf("/metrics/resource: %d %v %.1000s", code, err, body)
		return
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	res, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics/resource is not the Prometheus text format: %v", err)
	}
	r := scrape(res)
	ws := s.value(t, "container_memory_working_set_bytes", m.worker.labels)
	if got := r.value(t, "container_memory_working_set_bytes", m.worker.labels); got < ws*0.9 || got > ws*1.1 {
		t.Errorf("/metrics/resource: worker's working set %.0f, /metrics/cadvisor says %.0f", got, ws)
	}
	cpu := s.value(t, "container_cpu_usage_seconds_total", m.worker.labels)
	if got := r.value(t, "container_cpu_usage_seconds_total", m.worker.labels); got < cpu {
		t.Errorf("/metrics/resource: worker's cpu %.3f s, behind /metrics/cadvisor's earlier %.0f s", got, cpu)
	}
}

// kubeletMetricsErrors are the errors the kubelet logs when it cannot use
// what the CRI metrics calls return: it drops the metric (label values
// that do not match its descriptor's keys) or the whole answer, and the
// scrape goes on without it.
var kubeletMetricsErrors = []string{
	"Error reading MetricDescriptors",
	"Error getting CRI prometheus metric",
	"Failed to get pod metrics",
}

// checkNoMetricsErrors: the kubelet's log has none of them.
func (k *runningKubelet) checkNoMetricsErrors(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(k.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, e := range kubeletMetricsErrors {
			if strings.Contains(line, e) {
				t.Errorf("kubelet: %s", line)
			}
		}
	}
}

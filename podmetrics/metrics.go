package podmetrics

import (
	"strconv"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
)

// BaseLabelKeys are the labels of every metric, in the order of its label
// values: the labels the kubelet gives cAdvisor's container metrics.
var BaseLabelKeys = []string{"container", "id", "image", "name", "namespace", "pod"}

// Labels are the base label values of one pod or container.
type Labels struct {
	// Container is the container's CRI metadata name; "" for the pod.
	Container string
	// ID is the cgroup (cAdvisor's id), e.g. /kubepods/pod<uid>/<id>.
	ID string
	// Image is the image the container config named; "" for the pod.
	Image string
	// Name is the runtime's container ID; "" for the pod.
	Name           string
	Namespace, Pod string
}

func (l Labels) values() []string {
	return []string{l.Container, l.ID, l.Image, l.Name, l.Namespace, l.Pod}
}

// NetInterface is the counters of one network interface.
type NetInterface struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// FsUsage is a container's use of the filesystem its writable layer is on.
type FsUsage struct {
	// Device is the filesystem's source, e.g. /dev/vda1.
	Device                 string
	UsageBytes, LimitBytes uint64
	Inodes, InodesFree     uint64
	Timestamp              time.Time
}

// Input is what the metrics of one pod or container are built from.
type Input struct {
	Labels Labels
	// Stats is the last cgroup sample, read with Families.CgroupExtra();
	// nil when there is none (the container does not run).
	Stats *cgroups.Stats
	// Network is the pod's interfaces (pod level only), sampled at
	// NetworkAt.
	Network   []NetInterface
	NetworkAt time.Time
	// Fs is the container's writable layer usage (containers only).
	Fs *FsUsage
	// DeviceName names a block device for Stats.IO ("" when unknown:
	// the series is then labelled "major:minor").
	DeviceName       func(major, minor uint64) string
	Created, Started time.Time
}

// value is one sample of a metric: its value, the label values that follow
// the base ones, and when it was taken.
type value struct {
	v      uint64
	labels []string
	at     time.Time
}

// def describes one metric family member: cAdvisor's name, help text and
// extra labels, and how to read its values from an Input.
type def struct {
	family Families // 0: always served
	name   string
	help   string
	typ    runtime.MetricType
	labels []string
	values func(in *Input) []value
}

// Descriptors are the descriptors of the metrics fs serves.
func (fs Families) Descriptors() []*runtime.MetricDescriptor {
	var out []*runtime.MetricDescriptor
	for i := range defs {
		d := &defs[i]
		if d.family != 0 && !fs.Has(d.family) {
			continue
		}
		keys := append(append(make([]string, 0, len(BaseLabelKeys)+len(d.labels)), BaseLabelKeys...), d.labels...)
		out = append(out, &runtime.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: keys})
	}
	return out
}

// Metrics builds the metrics of fs that in has figures for. Each metric's
// label values match its descriptor's label keys one for one.
func (fs Families) Metrics(in *Input) []*runtime.Metric {
	base := in.Labels.values()
	var out []*runtime.Metric
	for i := range defs {
		d := &defs[i]
		if d.family != 0 && !fs.Has(d.family) {
			continue
		}
		for _, v := range d.values(in) {
			lv := append(append(make([]string, 0, len(base)+len(v.labels)), base...), v.labels...)
			m := &runtime.Metric{Name: d.name, MetricType: d.typ, LabelValues: lv, Value: &runtime.UInt64Value{Value: v.v}}
			if !v.at.IsZero() {
				m.Timestamp = v.at.UnixNano()
			}
			out = append(out, m)
		}
	}
	return out
}

const (
	counter = runtime.MetricType_COUNTER
	gauge   = runtime.MetricType_GAUGE
)

// seconds turns nanoseconds into the whole seconds a CRI metric can carry
// (its value is an integer; cAdvisor's would be fractional).
func seconds(ns uint64) uint64 { return ns / uint64(time.Second) }

// fromStats makes a def's values from the cgroup sample, when there is one.
func fromStats(get func(st *cgroups.Stats) (uint64, bool)) func(in *Input) []value {
	return func(in *Input) []value {
		if in.Stats == nil {
			return nil
		}
		v, ok := get(in.Stats)
		if !ok {
			return nil
		}
		return []value{{v: v, at: in.Stats.Timestamp}}
	}
}

func cpuStat(get func(c *cgroups.CPUStats) uint64) func(in *Input) []value {
	return fromStats(func(st *cgroups.Stats) (uint64, bool) {
		if st.CPU == nil {
			return 0, false
		}
		return get(st.CPU), true
	})
}

// cfsStat is a CFS figure, which cAdvisor reports only for a cgroup with a
// CPU quota. The quota is known when the spec family is read; otherwise an
// elapsed enforcement period shows it, since none elapses without one. A
// container started a moment ago has a quota but no period yet: its
// figures are 0, not missing.
func cfsStat(get func(c *cgroups.CPUStats) uint64) func(in *Input) []value {
	return fromStats(func(st *cgroups.Stats) (uint64, bool) {
		quota := st.Spec != nil && st.Spec.CPUQuota > 0
		if st.CPU == nil || st.CPU.Periods == 0 && !quota {
			return 0, false
		}
		return get(st.CPU), true
	})
}

func memStat(get func(m *cgroups.MemoryStats) uint64) func(in *Input) []value {
	return fromStats(func(st *cgroups.Stats) (uint64, bool) {
		if st.Memory == nil {
			return 0, false
		}
		return get(st.Memory), true
	})
}

func always(get func(st *cgroups.Stats) uint64) func(in *Input) []value {
	return fromStats(func(st *cgroups.Stats) (uint64, bool) { return get(st), true })
}

func procStat(get func(p *cgroups.ProcessStats) uint64) func(in *Input) []value {
	return fromStats(func(st *cgroups.Stats) (uint64, bool) {
		if st.Processes == nil {
			return 0, false
		}
		return get(st.Processes), true
	})
}

func specStat(get func(s *cgroups.SpecStats) uint64, skipZero bool) func(in *Input) []value {
	return fromStats(func(st *cgroups.Stats) (uint64, bool) {
		if st.Spec == nil {
			return 0, false
		}
		v := get(st.Spec)
		return v, v != 0 || !skipZero
	})
}

func psiStat(get func(p *cgroups.PressureStats) uint64) func(in *Input) []value {
	return fromStats(func(st *cgroups.Stats) (uint64, bool) {
		if st.Pressure == nil {
			return 0, false
		}
		return get(st.Pressure) / uint64(time.Second/time.Microsecond), true
	})
}

func memoryFailures(in *Input) []value {
	if in.Stats == nil || in.Stats.Memory == nil {
		return nil
	}
	m, at := in.Stats.Memory, in.Stats.Timestamp
	// cAdvisor reads both scopes from memory.stat's own counters.
	return []value{
		{v: m.PgFault, labels: []string{"pgfault", "container"}, at: at},
		{v: m.PgMajFault, labels: []string{"pgmajfault", "container"}, at: at},
		{v: m.PgFault, labels: []string{"pgfault", "hierarchy"}, at: at},
		{v: m.PgMajFault, labels: []string{"pgmajfault", "hierarchy"}, at: at},
	}
}

func netStat(get func(n *NetInterface) uint64) func(in *Input) []value {
	return func(in *Input) []value {
		out := make([]value, 0, len(in.Network))
		for i := range in.Network {
			n := &in.Network[i]
			out = append(out, value{v: get(n), labels: []string{n.Name}, at: in.NetworkAt})
		}
		return out
	}
}

func fsStat(get func(f *FsUsage) uint64) func(in *Input) []value {
	return func(in *Input) []value {
		if in.Fs == nil {
			return nil
		}
		return []value{{v: get(in.Fs), labels: []string{in.Fs.Device}, at: in.Fs.Timestamp}}
	}
}

func ioStat(get func(d *cgroups.DeviceIO) uint64) func(in *Input) []value {
	return func(in *Input) []value {
		if in.Stats == nil {
			return nil
		}
		out := make([]value, 0, len(in.Stats.IO))
		for i := range in.Stats.IO {
			d := &in.Stats.IO[i]
			out = append(out, value{v: get(d), labels: []string{deviceName(in, d)}, at: in.Stats.Timestamp})
		}
		return out
	}
}

func blkioUsage(in *Input) []value {
	if in.Stats == nil {
		return nil
	}
	out := make([]value, 0, 2*len(in.Stats.IO))
	for i := range in.Stats.IO {
		d := &in.Stats.IO[i]
		name, maj, minor := deviceName(in, d), strconv.FormatUint(d.Major, 10), strconv.FormatUint(d.Minor, 10)
		out = append(out,
			value{v: d.ReadBytes, labels: []string{name, maj, minor, "Read"}, at: in.Stats.Timestamp},
			value{v: d.WriteBytes, labels: []string{name, maj, minor, "Write"}, at: in.Stats.Timestamp})
	}
	return out
}

// deviceName is the device's name, else its number: two unnamed devices
// must not share a label value, which Prometheus refuses.
func deviceName(in *Input, d *cgroups.DeviceIO) string {
	if in.DeviceName != nil {
		if name := in.DeviceName(d.Major, d.Minor); name != "" {
			return name
		}
	}
	return strconv.FormatUint(d.Major, 10) + ":" + strconv.FormatUint(d.Minor, 10)
}

// timeValue is a point in time as whole Unix seconds, gathered live.
func timeValue(get func(in *Input) time.Time) func(in *Input) []value {
	return func(in *Input) []value {
		t := get(in)
		if t.IsZero() {
			return nil
		}
		return []value{{v: uint64(t.Unix())}}
	}
}

// lastSeen is when the pod or container was last sampled.
func lastSeen(in *Input) []value {
	var at time.Time
	switch {
	case in.Stats != nil:
		at = in.Stats.Timestamp
	case !in.NetworkAt.IsZero():
		at = in.NetworkAt
	default:
		return nil
	}
	return []value{{v: uint64(at.Unix()), at: at}}
}

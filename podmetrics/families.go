// Package podmetrics owns the metrics the CRI's ListMetricDescriptors and
// ListPodSandboxMetrics serve: cAdvisor's container metric families under
// cAdvisor's names, help texts and label sets, so that a kubelet serving
// /metrics/cadvisor from the runtime (feature gate
// PodAndContainerStatsFromCRI) exposes what it exposed with cAdvisor. It
// builds them from figures the caller sampled; it reads no file itself.
package podmetrics

import (
	"fmt"
	"strings"

	"github.com/criserver/criserver/cgroups"
)

// Families is a set of metric families.
type Families uint16

// The families, named in the config as familyNames lists them.
const (
	CPU Families = 1 << iota
	Memory
	OOM
	Network
	Disk
	DiskIO
	Process
	Spec
	Pressure

	// All is every family.
	All = CPU | Memory | OOM | Network | Disk | DiskIO | Process | Spec | Pressure
)

// familyNames are the config's names (included_pod_metrics), in the order
// criserver config prints them.
var familyNames = []struct {
	name string
	f    Families
}{
	{"cpu", CPU},
	{"memory", Memory},
	{"oom", OOM},
	{"network", Network},
	{"disk", Disk},
	{"diskio", DiskIO},
	{"process", Process},
	{"spec", Spec},
	{"pressure", Pressure},
}

// Has tells whether fs holds f.
func (fs Families) Has(f Families) bool { return fs&f != 0 }

// ParseFamilies reads config names; an unknown name is an error that
// lists the known ones.
func ParseFamilies(names []string) (Families, error) {
	var fs Families
	for _, n := range names {
		f, ok := familyByName(n)
		if !ok {
			known := make([]string, len(familyNames))
			for i, fn := range familyNames {
				known[i] = fn.name
			}
			return 0, fmt.Errorf("unknown metric family %q (known: %s)", n, strings.Join(known, ", "))
		}
		fs |= f
	}
	return fs, nil
}

func familyByName(n string) (Families, bool) {
	for _, fn := range familyNames {
		if fn.name == n {
			return fn.f, true
		}
	}
	return 0, false
}

// Names lists the config names of fs.
func (fs Families) Names() []string {
	var out []string
	for _, fn := range familyNames {
		if fs.Has(fn.f) {
			out = append(out, fn.name)
		}
	}
	return out
}

// CgroupExtra is what the cgroup sampler must read for fs, beyond the
// CRI stats' own figures. Network and disk come from elsewhere (the pod's
// network namespace, the writable layer).
func (fs Families) CgroupExtra() cgroups.Extra {
	var e cgroups.Extra
	for _, m := range []struct {
		f Families
		e cgroups.Extra
	}{
		{CPU, cgroups.ExtraCPU},
		{Memory, cgroups.ExtraMemory},
		{OOM, cgroups.ExtraOOM},
		{DiskIO, cgroups.ExtraIO},
		{Process, cgroups.ExtraProcesses},
		{Spec, cgroups.ExtraSpec},
		{Pressure, cgroups.ExtraPressure},
	} {
		if fs.Has(m.f) {
			e |= m.e
		}
	}
	return e
}

// Config is the [stats] section of the daemon's config.
type Config struct {
	// IncludedPodMetrics names the metric families ListPodSandboxMetrics
	// serves and the stats refresher collects; a family left out costs
	// nothing.
	IncludedPodMetrics []string `toml:"included_pod_metrics"`
}

// DefaultConfig includes every family: what the kubelet serves on
// /metrics/cadvisor (pressure only where the cgroup offers PSI).
func DefaultConfig() Config {
	return Config{IncludedPodMetrics: All.Names()}
}

// Validate checks the family names.
func (c Config) Validate() error {
	if _, err := ParseFamilies(c.IncludedPodMetrics); err != nil {
		return fmt.Errorf("included_pod_metrics: %w", err)
	}
	return nil
}

// Families is the set the config names.
func (c Config) Families() Families {
	fs, _ := ParseFamilies(c.IncludedPodMetrics) // checked by Validate
	return fs
}

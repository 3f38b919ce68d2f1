package nri

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/criserver/criserver/oci"
)

// ApplyAdjustment applies the plugins' combined adjustment to the spec of
// a container being created: annotations, environment, arguments, mounts,
// OCI hooks, devices, resources, oom_score_adj and sysctls. Kinds this
// daemon cannot honour are refused, so that no plugin believes a change
// was made when it was not. POSIX rlimits are left out of the spec: runc
// fails on this host when process.rlimits is set (the caller logs them).
func ApplyAdjustment(s *specs.Spec, a *api.ContainerAdjustment, host *oci.HostInfo) error {
	if a == nil {
		return nil
	}
	if err := supported(a); err != nil {
		return err
	}
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	adjustAnnotations(s, a.GetAnnotations())
	adjustEnv(s.Process, a.GetEnv())
	if args := a.GetArgs(); len(args) > 0 {
		// A leading "" marks args that may replace another plugin's.
		if args[0] == "" {
			args = args[1:]
		}
		s.Process.Args = slices.Clone(args)
	}
	adjustMounts(s, a.GetMounts())
	adjustHooks(s, a.GetHooks())
	l := a.GetLinux()
	adjustDevices(s.Linux, l.GetDevices())
	adjustResources(s.Linux.Resources, l.GetResources())
	if v := l.GetOomScoreAdj(); v != nil {
		adj, err := oci.OOMScoreAdj(int(v.GetValue()), host)
		if err != nil {
			return err
		}
		s.Process.OOMScoreAdj = &adj
	}
	s.Linux.Sysctl = adjustMap(s.Linux.Sysctl, l.GetSysctl())
	return nil
}

// supported refuses the adjustments this daemon does not carry out.
func supported(a *api.ContainerAdjustment) error {
	var refused []string
	add := func(cond bool, what string) {
		if cond {
			refused = append(refused, what)
		}
	}
	// The adaptation hands over empty messages for kinds no plugin set:
	// only content counts.
	set := func(m proto.Message) bool { return m != nil && proto.Size(m) > 0 }
	l := a.GetLinux()
	rdt := l.GetRdt()
	add(len(a.GetCDIDevices()) > 0, "CDI devices")
	add(l.GetCgroupsPath() != "", "cgroups path")
	add(set(l.GetIoPriority()), "I/O priority")
	add(set(l.GetSeccompPolicy()), "seccomp policy")
	add(len(l.GetNamespaces()) > 0, "namespaces")
	add(len(l.GetNetDevices()) > 0, "network devices")
	add(set(l.GetScheduler()), "scheduler")
	add(rdt.GetClosId() != nil || rdt.GetSchemata() != nil || rdt.GetEnableMonitoring() != nil ||
		l.GetResources().GetRdtClass() != nil, "RDT")
	add(set(l.GetMemoryPolicy()), "memory policy")
	add(l.GetResources().GetBlockioClass() != nil, "block I/O class")
	if len(refused) > 0 {
		return errors.New("not supported by criserver: " + strings.Join(refused, ", "))
	}
	return nil
}

// adjustMap sets keys, and deletes those marked for removal.
func adjustMap(m map[string]string, adj map[string]string) map[string]string {
	for k, v := range adj {
		if key, remove := api.IsMarkedForRemoval(k); remove {
			delete(m, key)
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[k] = v
	}
	return m
}

func adjustAnnotations(s *specs.Spec, adj map[string]string) {
	s.Annotations = adjustMap(s.Annotations, adj)
}

// adjustEnv replaces a variable in place, appends a new one, and drops
// those marked for removal.
func adjustEnv(p *specs.Process, env []*api.KeyValue) {
	for _, kv := range env {
		key, remove := kv.IsMarkedForRemoval()
		i := slices.IndexFunc(p.Env, func(e string) bool { return e == key || strings.HasPrefix(e, key+"=") })
		switch {
		case remove && i >= 0:
			p.Env = slices.Delete(p.Env, i, i+1)
		case remove:
		case i >= 0:
			p.Env[i] = kv.ToOCI()
		default:
			p.Env = append(p.Env, kv.ToOCI())
		}
	}
}

// adjustMounts replaces a mount at the same destination, adds new ones,
// drops those marked for removal, and sorts parents first.
func adjustMounts(s *specs.Spec, mounts []*api.Mount) {
	if len(mounts) == 0 {
		return
	}
	for _, m := range mounts {
		dst, remove := m.IsMarkedForRemoval()
		s.Mounts = slices.DeleteFunc(s.Mounts, func(o specs.Mount) bool { return o.Destination == dst })
		if !remove {
			s.Mounts = append(s.Mounts, m.ToOCI(nil))
		}
	}
	oci.SortMounts(s.Mounts)
}

func adjustHooks(s *specs.Spec, h *api.Hooks) {
	if h == nil {
		return
	}
	if s.Hooks == nil {
		s.Hooks = &specs.Hooks{}
	}
	for _, l := range []struct {
		dst *[]specs.Hook
		src []*api.Hook
	}{
		{&s.Hooks.Prestart, h.GetPrestart()}, //nolint:staticcheck // plugins may still ask for prestart hooks
		{&s.Hooks.CreateRuntime, h.GetCreateRuntime()},
		{&s.Hooks.CreateContainer, h.GetCreateContainer()},
		{&s.Hooks.StartContainer, h.GetStartContainer()},
		{&s.Hooks.Poststart, h.GetPoststart()},
		{&s.Hooks.Poststop, h.GetPoststop()},
	} {
		for _, hk := range l.src {
			*l.dst = append(*l.dst, hk.ToOCI())
		}
	}
}

// adjustDevices adds device nodes with a cgroup rule that allows them,
// and drops those marked for removal.
func adjustDevices(l *specs.Linux, devices []*api.LinuxDevice) {
	for _, d := range devices {
		path, remove := d.IsMarkedForRemoval()
		l.Devices = slices.DeleteFunc(l.Devices, func(o specs.LinuxDevice) bool { return o.Path == path })
		if remove {
			continue
		}
		l.Devices = append(l.Devices, d.ToOCI())
		major, minor := d.GetMajor(), d.GetMinor()
		l.Resources.Devices = append(l.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow: true, Type: d.GetType(), Major: &major, Minor: &minor, Access: d.AccessString(),
		})
	}
}

// adjustResources lays the settings a plugin made over the spec's.
func adjustResources(r *specs.LinuxResources, a *api.LinuxResources) {
	if a == nil {
		return
	}
	o := a.ToOCI()
	if a.GetMemory() != nil {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		m, n := r.Memory, o.Memory
		setPtr(&m.Limit, n.Limit)
		setPtr(&m.Reservation, n.Reservation)
		setPtr(&m.Swap, n.Swap)
		setPtr(&m.Kernel, n.Kernel) //nolint:staticcheck // a plugin may still set it
		setPtr(&m.KernelTCP, n.KernelTCP)
		setPtr(&m.Swappiness, n.Swappiness)
		setPtr(&m.DisableOOMKiller, n.DisableOOMKiller)
		setPtr(&m.UseHierarchy, n.UseHierarchy)
	}
	if a.GetCpu() != nil {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		c, n := r.CPU, o.CPU
		setPtr(&c.Shares, n.Shares)
		setPtr(&c.Quota, n.Quota)
		setPtr(&c.Period, n.Period)
		setPtr(&c.RealtimeRuntime, n.RealtimeRuntime)
		setPtr(&c.RealtimePeriod, n.RealtimePeriod)
		if n.Cpus != "" {
			c.Cpus = n.Cpus
		}
		if n.Mems != "" {
			c.Mems = n.Mems
		}
	}
	for _, h := range o.HugepageLimits {
		r.HugepageLimits = slices.DeleteFunc(r.HugepageLimits, func(x specs.LinuxHugepageLimit) bool { return x.Pagesize == h.Pagesize })
		r.HugepageLimits = append(r.HugepageLimits, h)
	}
	r.Unified = adjustMap(r.Unified, o.Unified)
	if o.Pids != nil && o.Pids.Limit != nil {
		r.Pids = o.Pids
	}
	r.Devices = append(r.Devices, o.Devices...)
}

func setPtr[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

// rlimitNames lists the rlimits a plugin asked for, for the log line
// that says they were not applied.
func rlimitNames(a *api.ContainerAdjustment) []string {
	var names []string
	for _, r := range a.GetRlimits() {
		names = append(names, fmt.Sprintf("%s=%d:%d", r.GetType(), r.GetSoft(), r.GetHard()))
	}
	return names
}

package nri

import (
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/sandbox"
)

// Container is what the daemon knows of a container, for the view
// plugins get.
type Container struct {
	ID, PodID string
	Config    *runtime.ContainerConfig
	State     runtime.ContainerState
	// Spec is the generated OCI spec while the container is created; nil
	// later, when the view comes from Config.
	Spec                             *specs.Spec
	Pid                              int
	CgroupsPath                      string
	CreatedAt, StartedAt, FinishedAt time.Time
	ExitCode                         int32
	Reason, Message                  string
	Resources                        *runtime.LinuxContainerResources
}

func podView(sb *sandbox.Sandbox) *api.PodSandbox {
	md := sb.Metadata()
	lx := sb.Config.GetLinux()
	p := &api.PodSandbox{
		Id:             sb.ID,
		Name:           md.GetName(),
		Uid:            md.GetUid(),
		Namespace:      md.GetNamespace(),
		Labels:         api.DupStringMap(sb.Config.GetLabels()),
		Annotations:    api.DupStringMap(sb.Config.GetAnnotations()),
		RuntimeHandler: sb.RuntimeHandler,
		Pid:            uint32(sb.InfraPID),
		Ips:            api.DupStringSlice(sb.IPs),
		Linux: &api.LinuxPodSandbox{
			CgroupParent: sb.CgroupParent,
			CgroupsPath:  sb.CgroupParent,
			PodResources: fromCRIResources(lx.GetResources()),
			PodOverhead:  fromCRIResources(lx.GetOverhead()),
			Resources:    fromCRIResources(lx.GetResources()),
		},
	}
	for typ, path := range map[string]string{"network": sb.NetNSPath, "ipc": sb.IPCNSPath, "uts": sb.UTSNSPath, "pid": sb.PIDNSPath} {
		if path != "" {
			p.Linux.Namespaces = append(p.Linux.Namespaces, &api.LinuxNamespace{Type: typ, Path: path})
		}
	}
	return p
}

var containerStates = map[runtime.ContainerState]api.ContainerState{
	runtime.ContainerState_CONTAINER_CREATED: api.ContainerState_CONTAINER_CREATED,
	runtime.ContainerState_CONTAINER_RUNNING: api.ContainerState_CONTAINER_RUNNING,
	runtime.ContainerState_CONTAINER_EXITED:  api.ContainerState_CONTAINER_STOPPED,
}

func containerView(c Container) *api.Container {
	cfg := c.Config
	v := &api.Container{
		Id:            c.ID,
		PodSandboxId:  c.PodID,
		Name:          cfg.GetMetadata().GetName(),
		State:         containerStates[c.State],
		Labels:        api.DupStringMap(cfg.GetLabels()),
		Annotations:   api.DupStringMap(cfg.GetAnnotations()),
		Pid:           uint32(c.Pid),
		CreatedAt:     unixNano(c.CreatedAt),
		StartedAt:     unixNano(c.StartedAt),
		FinishedAt:    unixNano(c.FinishedAt),
		ExitCode:      c.ExitCode,
		StatusReason:  c.Reason,
		StatusMessage: c.Message,
		Linux: &api.LinuxContainer{
			CgroupsPath: c.CgroupsPath,
			Resources:   fromCRIResources(c.Resources),
		},
	}
	if s := c.Spec; s != nil {
		fromSpec(v, s)
		return v
	}
	v.Args = append(append([]string{}, cfg.GetCommand()...), cfg.GetArgs()...)
	for _, kv := range cfg.GetEnvs() {
		v.Env = append(v.Env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	for _, m := range cfg.GetMounts() {
		opts := []string{"rbind"}
		if m.GetReadonly() {
			opts = append(opts, "ro")
		}
		v.Mounts = append(v.Mounts, &api.Mount{Destination: m.GetContainerPath(), Source: m.GetHostPath(), Type: "bind", Options: opts})
	}
	return v
}

// fromSpec fills the view from the spec being created, which holds what
// the image and the defaults added to the CRI config.
func fromSpec(v *api.Container, s *specs.Spec) {
	v.Annotations = api.DupStringMap(s.Annotations)
	v.Mounts = api.FromOCIMounts(s.Mounts)
	v.Hooks = api.FromOCIHooks(s.Hooks)
	if p := s.Process; p != nil {
		v.Args = api.DupStringSlice(p.Args)
		v.Env = api.DupStringSlice(p.Env)
		v.User = &api.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: p.User.AdditionalGids}
		if p.OOMScoreAdj != nil {
			v.Linux.OomScoreAdj = api.Int(*p.OOMScoreAdj)
		}
	}
	if l := s.Linux; l != nil {
		v.Linux.Namespaces = api.FromOCILinuxNamespaces(l.Namespaces)
		v.Linux.Devices = api.FromOCILinuxDevices(l.Devices)
		v.Linux.Resources = api.FromOCILinuxResources(l.Resources, nil)
		v.Linux.CgroupsPath = l.CgroupsPath
		v.Linux.Sysctl = api.DupStringMap(l.Sysctl)
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromCRIResources is the NRI form of CRI resources (nil for nil).
func fromCRIResources(r *runtime.LinuxContainerResources) *api.LinuxResources {
	if r == nil {
		return nil
	}
	out := &api.LinuxResources{
		Cpu: &api.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()},
		Memory: &api.LinuxMemory{
			Limit: api.Int64(r.GetMemoryLimitInBytes()),
		},
		Unified: api.DupStringMap(r.GetUnified()),
	}
	if v := r.GetCpuShares(); v > 0 {
		out.Cpu.Shares = api.UInt64(uint64(v))
	}
	if v := r.GetCpuQuota(); v != 0 {
		out.Cpu.Quota = api.Int64(v)
	}
	if v := r.GetCpuPeriod(); v > 0 {
		out.Cpu.Period = api.UInt64(uint64(v))
	}
	if v := r.GetMemorySwapLimitInBytes(); v != 0 {
		out.Memory.Swap = api.Int64(v)
	}
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, &api.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	return out
}

// criResources lays what a plugin set in u over base. Settings the CRI
// cannot express are refused rather than dropped.
func criResources(base *runtime.LinuxContainerResources, u *api.LinuxResources) (*runtime.LinuxContainerResources, error) {
	out := &runtime.LinuxContainerResources{}
	if base != nil {
		out = cloneResources(base)
	}
	if u == nil {
		return out, nil
	}
	if err := criOnly(u); err != nil {
		return nil, err
	}
	if c := u.GetCpu(); c != nil {
		if v := c.GetShares(); v != nil {
			out.CpuShares = int64(v.GetValue())
		}
		if v := c.GetQuota(); v != nil {
			out.CpuQuota = v.GetValue()
		}
		if v := c.GetPeriod(); v != nil {
			out.CpuPeriod = int64(v.GetValue())
		}
		if c.GetCpus() != "" {
			out.CpusetCpus = c.GetCpus()
		}
		if c.GetMems() != "" {
			out.CpusetMems = c.GetMems()
		}
	}
	if m := u.GetMemory(); m != nil {
		if v := m.GetLimit(); v != nil {
			out.MemoryLimitInBytes = v.GetValue()
		}
		if v := m.GetSwap(); v != nil {
			out.MemorySwapLimitInBytes = v.GetValue()
		}
	}
	if len(u.GetHugepageLimits()) > 0 {
		out.HugepageLimits = nil
		for _, h := range u.GetHugepageLimits() {
			out.HugepageLimits = append(out.HugepageLimits, &runtime.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
		}
	}
	for k, v := range u.GetUnified() {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		out.Unified[k] = v
	}
	return out, nil
}

// criOnly refuses the parts of a resource update that a running
// container's CRI resources cannot carry.
func criOnly(u *api.LinuxResources) error {
	m, c := u.GetMemory(), u.GetCpu()
	switch {
	case m.GetReservation() != nil, m.GetKernel() != nil, m.GetKernelTcp() != nil, m.GetSwappiness() != nil,
		m.GetDisableOomKiller() != nil, m.GetUseHierarchy() != nil:
		return fmt.Errorf("memory reservation, kernel, swappiness and OOM-killer settings cannot be updated")
	case c.GetRealtimeRuntime() != nil, c.GetRealtimePeriod() != nil:
		return fmt.Errorf("realtime CPU settings cannot be updated")
	case u.GetBlockioClass() != nil, u.GetRdtClass() != nil:
		return fmt.Errorf("block I/O and RDT classes are not supported")
	case u.GetPids() != nil, len(u.GetDevices()) > 0:
		return fmt.Errorf("pids limits and device rules cannot be updated")
	}
	return nil
}

func cloneResources(r *runtime.LinuxContainerResources) *runtime.LinuxContainerResources {
	return proto.Clone(r).(*runtime.LinuxContainerResources)
}

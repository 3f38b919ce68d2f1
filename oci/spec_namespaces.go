package oci

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// setNamespaces joins the pod's network, IPC and UTS namespaces by path
// (none when the pod uses the host's), and picks the PID namespace: a new
// one, the pod's, the target container's, or the host's.
func setNamespaces(s *specs.Spec, in SpecInput, host *HostInfo) error {
	sb := in.Sandbox
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if !sb.HostNetwork {
		if sb.NetNSPath == "" {
			return invalidf("pod %s has no network namespace", sb.ID)
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: sb.NetNSPath})
		// A pod on the host network uses the host's UTS namespace too.
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: sb.UTSNSPath})
	}
	if !sb.HostIPC {
		if sb.IPCNSPath == "" {
			return invalidf("pod %s has no IPC namespace", sb.ID)
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: sb.IPCNSPath})
	}
	mode := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid()
	if sb.HostPID {
		mode = runtime.NamespaceMode_NODE
	}
	switch mode {
	case runtime.NamespaceMode_CONTAINER:
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	case runtime.NamespaceMode_POD:
		// POD is the enum's zero value, so configs that say nothing ask for
		// it; a pod that shares no PID namespace then gives the container
		// its own, as the pod's own mode asked.
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: sb.PIDNSPath})
	case runtime.NamespaceMode_TARGET:
		if in.TargetPIDNSPath == "" {
			return invalidf("PID namespace target %q is not running", in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetTargetId())
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: in.TargetPIDNSPath})
	case runtime.NamespaceMode_NODE:
	default:
		return invalidf("unknown PID namespace mode %v", mode)
	}
	if host.CgroupV2 {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	if sb.UserNSPath != "" {
		// Joined by path only: runc reads the mappings from the namespace
		// and refuses a config that gives both.
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace, Path: sb.UserNSPath})
		// Mount uidMappings/gidMappings are runtime-spec 1.1.
		s.Version = ociVersionIDMap
	}
	s.Linux.Namespaces = ns
	return nil
}

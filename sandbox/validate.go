package sandbox

import (
	"fmt"
	"net/netip"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cni"
)

// Annotations that carry the pod's bandwidth limits.
const (
	AnnotationIngressBandwidth = "kubernetes.io/ingress-bandwidth"
	AnnotationEgressBandwidth  = "kubernetes.io/egress-bandwidth"
)

// validate refuses a config that cannot be run, before anything is made.
func (m *Manager) validate(cfg *runtime.PodSandboxConfig, handler string) error {
	if cfg == nil {
		return fmt.Errorf("%w: config is missing", ErrInvalid)
	}
	md := cfg.GetMetadata()
	if md == nil || md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return fmt.Errorf("%w: metadata with name, namespace and uid is required", ErrInvalid)
	}
	if !m.opts.HasHandler(handler) {
		return fmt.Errorf("%w: runtime handler %q is not configured", ErrInvalid, handler)
	}
	if len(cfg.GetHostname()) > 64 || strings.ContainsAny(cfg.GetHostname(), "/ \t\n\x00") {
		return fmt.Errorf("%w: hostname %q is not a valid host name", ErrInvalid, cfg.GetHostname())
	}
	nso := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if _, _, _, err := userNamespaceMappings(cfg); err != nil {
		return err
	}
	for name, mode := range map[string]runtime.NamespaceMode{"network": nso.GetNetwork(), "ipc": nso.GetIpc(), "pid": nso.GetPid()} {
		switch mode {
		case runtime.NamespaceMode_POD, runtime.NamespaceMode_NODE:
		case runtime.NamespaceMode_CONTAINER:
			if name != "pid" {
				return fmt.Errorf("%w: %s namespace mode CONTAINER is not valid for a pod", ErrInvalid, name)
			}
		default:
			return fmt.Errorf("%w: %s namespace mode %v is not valid for a pod", ErrInvalid, name, mode)
		}
	}
	hostNet := nso.GetNetwork() == runtime.NamespaceMode_NODE
	hostIPC := nso.GetIpc() == runtime.NamespaceMode_NODE
	if err := validateSysctls(cfg.GetLinux().GetSysctls(), hostNet, hostIPC); err != nil {
		return err
	}
	if err := validateDNS(cfg.GetDnsConfig()); err != nil {
		return err
	}
	if _, err := portMappings(cfg.GetPortMappings()); err != nil {
		return err
	}
	if _, err := bandwidth(cfg.GetAnnotations()); err != nil {
		return err
	}
	if _, err := podCgroup(m.opts.CgroupDriver, cfg.GetLinux().GetCgroupParent(), "x"); err != nil {
		return err
	}
	return nil
}

// portMappings converts the hostPorts for the portmap plugin; mappings
// without a hostPort only document the port and are left out.
func portMappings(pms []*runtime.PortMapping) ([]cni.PortMapping, error) {
	var out []cni.PortMapping
	for _, pm := range pms {
		if pm == nil {
			continue
		}
		if pm.GetContainerPort() <= 0 || pm.GetContainerPort() > 65535 {
			return nil, fmt.Errorf("%w: container port %d is outside 1-65535", ErrInvalid, pm.GetContainerPort())
		}
		if pm.GetHostPort() < 0 || pm.GetHostPort() > 65535 {
			return nil, fmt.Errorf("%w: host port %d is outside 1-65535", ErrInvalid, pm.GetHostPort())
		}
		var proto string
		switch pm.GetProtocol() {
		case runtime.Protocol_TCP:
			proto = "tcp"
		case runtime.Protocol_UDP:
			proto = "udp"
		case runtime.Protocol_SCTP:
			proto = "sctp"
		default:
			return nil, fmt.Errorf("%w: port mapping protocol %v is unknown", ErrInvalid, pm.GetProtocol())
		}
		if ip := pm.GetHostIp(); ip != "" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return nil, fmt.Errorf("%w: port mapping host IP %q is not an IP address", ErrInvalid, ip)
			}
		}
		if pm.GetHostPort() == 0 {
			continue
		}
		out = append(out, cni.PortMapping{HostPort: pm.GetHostPort(), ContainerPort: pm.GetContainerPort(), Protocol: proto, HostIP: pm.GetHostIp()})
	}
	return out, nil
}

// bandwidth reads the bandwidth annotations; nil when there are none.
func bandwidth(ann map[string]string) (*cni.Bandwidth, error) {
	in, hasIn := ann[AnnotationIngressBandwidth]
	out, hasOut := ann[AnnotationEgressBandwidth]
	if !hasIn && !hasOut {
		return nil, nil
	}
	// The API has no burst and the plugin needs one: use one large enough
	// not to limit anything on its own.
	const burst = 1 << 31
	bw := &cni.Bandwidth{}
	if hasIn {
		v, err := cni.ParseBandwidth(in)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("%w: annotation %s=%q is not a positive quantity", ErrInvalid, AnnotationIngressBandwidth, in)
		}
		bw.IngressRate, bw.IngressBurst = v, burst
	}
	if hasOut {
		v, err := cni.ParseBandwidth(out)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("%w: annotation %s=%q is not a positive quantity", ErrInvalid, AnnotationEgressBandwidth, out)
		}
		bw.EgressRate, bw.EgressBurst = v, burst
	}
	return bw, nil
}

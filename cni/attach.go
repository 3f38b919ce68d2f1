package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"k8s.io/klog/v2"
)

// IfName is the pod's interface.
const IfName = "eth0"

// PortMapping is one hostPort, in the portmap plugin's capability form.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"` // "tcp", "udp" or "sctp"
	HostIP        string `json:"hostIP,omitempty"`
}

// Bandwidth is the bandwidth plugin's capability, in bits per second.
type Bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

// DNS is the dns capability.
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// Pod is what ADD and DEL need to know about a pod.
type Pod struct {
	ID, Name, Namespace, UID string
	// NetNS is the pinned network namespace.
	NetNS        string
	PortMappings []PortMapping
	Bandwidth    *Bandwidth
	DNS          *DNS
}

// Result is the outcome of an ADD.
type Result struct {
	// IPs of the pod's interfaces, IPv4 first (the primary), then IPv6.
	IPs []string
}

func (p Pod) runtimeConf() *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: p.ID,
		NetNS:       p.NetNS,
		IfName:      IfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID},
			{"K8S_POD_UID", p.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	if len(p.PortMappings) > 0 {
		rt.CapabilityArgs["portMappings"] = p.PortMappings
	}
	if p.Bandwidth != nil {
		rt.CapabilityArgs["bandwidth"] = p.Bandwidth
	}
	if p.DNS != nil {
		rt.CapabilityArgs["dns"] = p.DNS
	}
	return rt
}

// Attach runs CNI ADD for the pod on the current network. On failure it
// runs DEL so that nothing the plugins allocated stays behind.
func (m *Manager) Attach(ctx context.Context, pod Pod) (Result, error) {
	list, err := m.network()
	if err != nil {
		return Result{}, err
	}
	rt := pod.runtimeConf()
	if list, err = prune(list, rt); err != nil {
		return Result{}, err
	}
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		addErr := fmt.Errorf("CNI ADD on network %s for pod %s: %w", list.Name, pod.ID, err)
		if derr := m.del(context.WithoutCancel(ctx), list, rt); derr != nil {
			klog.ErrorS(derr, "CNI DEL after a failed ADD", "pod", pod.ID, "network", list.Name)
		}
		return Result{}, addErr
	}
	ips, err := podIPs(res)
	if err != nil {
		return Result{}, fmt.Errorf("CNI ADD on network %s for pod %s: %w", list.Name, pod.ID, err)
	}
	return Result{IPs: ips}, nil
}

// Detach runs CNI DEL for the pod with the configuration and arguments its
// ADD used (libcni's cache), so a later change to the conf dir does not
// leak the old network's allocation. Without a cache entry it runs DEL on
// the current network, which plugins accept for an unknown pod. A netns
// that is already gone is passed as "", as the CNI spec allows for DEL.
func (m *Manager) Detach(ctx context.Context, pod Pod) error {
	netns := pod.NetNS
	if netns != "" {
		if _, err := os.Stat(netns); err != nil {
			netns = ""
		}
	}
	atts, err := m.cni.GetCachedAttachments(pod.ID)
	if err != nil {
		klog.V(2).InfoS("Reading CNI cache", "pod", pod.ID, "err", err)
	}
	var errs []error
	done := false
	for _, a := range atts {
		if a.IfName != IfName {
			continue
		}
		list, err := libcni.ConfListFromBytes(a.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("cached CNI config of pod %s: %w", pod.ID, err))
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: pod.ID, NetNS: netns, IfName: a.IfName, Args: a.CniArgs, CapabilityArgs: a.CapabilityArgs}
		if err := m.del(ctx, list, rt); err != nil {
			errs = append(errs, fmt.Errorf("CNI DEL on network %s for pod %s: %w", list.Name, pod.ID, err))
			continue
		}
		done = true
	}
	if done || len(errs) > 0 {
		return errors.Join(errs...)
	}
	list, err := m.network()
	if err != nil {
		// No network to run DEL with, and none was attached (no cache).
		return nil
	}
	rt := pod.runtimeConf()
	rt.NetNS = netns
	if err := m.del(ctx, list, rt); err != nil {
		return fmt.Errorf("CNI DEL on network %s for pod %s: %w", list.Name, pod.ID, err)
	}
	return nil
}

// del runs DEL on the list. libcni stops at the first plugin that fails;
// then every plugin is asked on its own, last first, so that one broken
// plugin does not keep the others (IPAM, portmap) from releasing what
// they hold. The first error is still returned.
func (m *Manager) del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	err := m.cni.DelNetworkList(ctx, list, rt)
	if err == nil || len(list.Plugins) < 2 {
		return err
	}
	errs := []error{err}
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		one := &libcni.NetworkConfigList{Name: list.Name, CNIVersion: list.CNIVersion, Plugins: list.Plugins[i : i+1]}
		if perr := m.cni.DelNetworkList(ctx, one, rt); perr != nil {
			klog.V(2).InfoS("CNI DEL of one plugin", "network", list.Name, "plugin", list.Plugins[i].Network.Type, "err", perr)
		}
	}
	return errors.Join(errs...)
}

// podIPs takes the addresses of the interfaces inside the pod (those with
// a sandbox), IPv4 before IPv6; an IP with no interface counts as the pod's.
func podIPs(r types.Result) ([]string, error) {
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	var v4, v6 []string
	for _, ip := range res.IPs {
		if ip.Interface != nil {
			i := *ip.Interface
			if i >= 0 && i < len(res.Interfaces) && res.Interfaces[i].Sandbox == "" {
				continue
			}
		}
		if ip.Address.IP.To4() != nil {
			v4 = append(v4, ip.Address.IP.String())
		} else {
			v6 = append(v6, ip.Address.IP.String())
		}
	}
	return slices.Concat(v4, v6), nil
}

// ParseBandwidth reads a Kubernetes quantity like "10M" or "1Gi" as bits
// per second; the kubernetes.io/*-bandwidth annotations use it.
func ParseBandwidth(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   uint64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15},
	}
	mult := uint64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	var n uint64
	if s == "" {
		return 0, fmt.Errorf("bandwidth %q: no number", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bandwidth %q: not a whole quantity like 10M", s)
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<53 {
			return 0, fmt.Errorf("bandwidth %q: too large", s)
		}
	}
	return n * mult, nil
}

// idlePlugins are plugins whose whole work is one capability: given no
// value for it, their ADD passes the previous result through and their DEL
// has nothing to undo. Each exec costs tens of milliseconds, so a pod
// without hostPorts or bandwidth limits skips them. staticKeys are config
// keys that give the plugin work of its own; with any of them it runs.
var idlePlugins = map[string]struct {
	capability string
	staticKeys []string
}{
	"portmap":   {"portMappings", nil},
	"bandwidth": {"bandwidth", []string{"ingressRate", "ingressBurst", "egressRate", "egressBurst"}},
}

// prune drops the idle plugins from list for this pod. The pruned list is
// what libcni caches, so DEL later runs exactly the plugins ADD ran.
func prune(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (*libcni.NetworkConfigList, error) {
	var keep []json.RawMessage
	pruned := false
	for _, p := range list.Plugins {
		if idle(p, rt) {
			pruned = true
			continue
		}
		keep = append(keep, json.RawMessage(p.Bytes))
	}
	if !pruned || len(keep) == 0 {
		return list, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, fmt.Errorf("network %s: %w", list.Name, err)
	}
	plugins, err := json.Marshal(keep)
	if err != nil {
		return nil, err
	}
	raw["plugins"] = plugins
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	out, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("network %s without idle plugins: %w", list.Name, err)
	}
	return out, nil
}

func idle(p *libcni.PluginConfig, rt *libcni.RuntimeConf) bool {
	if p.Network == nil {
		return false
	}
	spec, ok := idlePlugins[p.Network.Type]
	if !ok {
		return false
	}
	if _, given := rt.CapabilityArgs[spec.capability]; given {
		return false
	}
	var conf map[string]json.RawMessage
	if err := json.Unmarshal(p.Bytes, &conf); err != nil {
		return false
	}
	for _, k := range spec.staticKeys {
		if _, set := conf[k]; set {
			return false
		}
	}
	return true
}

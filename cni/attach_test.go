package cni

import (
	"net"
	"slices"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
)

func TestPodIPs(t *testing.T) {
	idx := func(i int) *int { return &i }
	ipnet := func(s string) net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return *n
	}
	res := &current.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*current.Interface{
			{Name: "cni0"},                          // host bridge
			{Name: "eth0", Sandbox: "/run/netns/x"}, // the pod's
		},
		IPs: []*current.IPConfig{
			{Interface: idx(0), Address: ipnet("10.1.0.1/24")},
			{Interface: idx(1), Address: ipnet("fd00::5/64")},
			{Interface: idx(1), Address: ipnet("10.1.0.5/24")},
			{Address: ipnet("10.2.0.5/24")},
		},
	}
	got, err := podIPs(res)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.1.0.5", "10.2.0.5", "fd00::5"}; !slices.Equal(got, want) {
		t.Errorf("podIPs = %v, want %v", got, want)
	}
}

func TestParseBandwidth(t *testing.T) {
	for in, want := range map[string]uint64{"10M": 10_000_000, "1Gi": 1 << 30, "500k": 500_000, "42": 42} {
		if got, err := ParseBandwidth(in); err != nil || got != want {
			t.Errorf("ParseBandwidth(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "1.5M", "-1", "ten"} {
		if _, err := ParseBandwidth(in); err == nil {
			t.Errorf("ParseBandwidth(%q) accepted", in)
		}
	}
}

func TestRuntimeConfArgs(t *testing.T) {
	rt := Pod{ID: "abc", Name: "n", Namespace: "ns", UID: "u", NetNS: "/x",
		PortMappings: []PortMapping{{HostPort: 80, ContainerPort: 8080, Protocol: "tcp"}}}.runtimeConf()
	want := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "ns"}, {"K8S_POD_NAME", "n"}, {"K8S_POD_INFRA_CONTAINER_ID", "abc"}, {"K8S_POD_UID", "u"}}
	if !slices.Equal(rt.Args, want) || rt.IfName != "eth0" || rt.NetNS != "/x" {
		t.Errorf("runtime conf = %+v", rt)
	}
	if _, ok := rt.CapabilityArgs["portMappings"]; !ok {
		t.Errorf("portMappings capability missing")
	}
	if _, ok := rt.CapabilityArgs["bandwidth"]; ok {
		t.Errorf("bandwidth capability set without limits")
	}
}

func TestPruneIdlePlugins(t *testing.T) {
	conf := []byte(`{"cniVersion":"1.0.0","name":"n","plugins":[
 {"type":"bridge","bridge":"b0"},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"bandwidth","capabilities":{"bandwidth":true}},
 {"type":"firewall"}]}`)
	list, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		t.Fatal(err)
	}
	types := func(l *libcni.NetworkConfigList) []string {
		var out []string
		for _, p := range l.Plugins {
			out = append(out, p.Network.Type)
		}
		return out
	}
	plain := Pod{ID: "a"}.runtimeConf()
	got, err := prune(list, plain)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bridge", "firewall"}; !slices.Equal(types(got), want) {
		t.Errorf("pruned plugins = %v, want %v", types(got), want)
	}
	// The cached bytes are the pruned list, so DEL matches ADD.
	again, err := libcni.ConfListFromBytes(got.Bytes)
	if err != nil || !slices.Equal(types(again), types(got)) || again.Name != "n" {
		t.Errorf("pruned bytes = %s (%v)", got.Bytes, err)
	}
	withPorts := Pod{ID: "a", PortMappings: []PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: "tcp"}}, Bandwidth: &Bandwidth{IngressRate: 1}}.runtimeConf()
	if got, _ := prune(list, withPorts); len(got.Plugins) != 4 {
		t.Errorf("plugins with capabilities given = %v", types(got))
	}
	static, _ := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"bandwidth","ingressRate":1000,"ingressBurst":1000}]}`))
	if got, _ := prune(static, plain); len(got.Plugins) != 2 {
		t.Errorf("bandwidth with static rates pruned: %v", types(got))
	}
}

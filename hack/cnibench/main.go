// Command cnibench times CNI ADD and DEL of criserver's default network
// shape (cni.BridgeNetwork) through the daemon's own cni package, with the
// OS's plugins (Debian's containernetworking-plugins in /usr/lib/cni, which
// use iptables) and with the pinned ones hack/cni-plugins builds, on their
// iptables and on their nftables backends (these need the nft program),
// alternating between the three:
//
//	hack/cni-plugins/build.sh /opt/criserver/cni/bin
//	go run ./hack/cnibench -n 20
//
// It needs root, makes network namespaces, a bridge (cnibench0) and a
// subnet (10.209.0.0/16) of its own, and removes them at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/criserver/criserver/cni"
)

// variant is one set of plugins with the network config it runs.
type variant struct {
	name     string
	binDir   string
	nftables bool
	mgr      *cni.Manager
	add, del map[string][]time.Duration // by pod kind
}

func main() {
	n := flag.Int("n", 20, "ADD/DEL cycles per variant and pod kind")
	osDir := flag.String("os-plugins", "/usr/lib/cni", "the OS's plugins (iptables)")
	pinnedDir := flag.String("pinned-plugins", "/opt/criserver/cni/bin", "the pinned plugins (nftables backends)")
	subnet := flag.String("subnet", "10.209.0.0/16", "the test network's subnet")
	flag.Parse()
	if err := run(context.Background(), *n, *subnet, []*variant{
		{name: "os (iptables)", binDir: *osDir},
		{name: "pinned (iptables)", binDir: *pinnedDir},
		{name: "pinned (nftables)", binDir: *pinnedDir, nftables: true},
	}); err != nil {
		fmt.Fprintln(os.Stderr, "cnibench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int, subnet string, variants []*variant) error {
	dir, err := os.MkdirTemp("", "cnibench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer func() { _ = exec.Command("ip", "link", "del", "cnibench0").Run() }() // gone unless a plugin made it
	defer os.RemoveAll("/var/lib/cni/networks/cnibench")
	for i, v := range variants {
		if v.mgr, err = newManager(filepath.Join(dir, fmt.Sprint(i)), v, subnet); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		v.add, v.del = map[string][]time.Duration{}, map[string][]time.Duration{}
	}
	kinds := []struct {
		name  string
		ports []cni.PortMapping
	}{
		{"pod", nil},
		{"pod with a hostPort", []cni.PortMapping{{HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}}},
	}
	// One unrecorded round first: the bridge and the shared chains are
	// made by whichever variant comes first.
	for i := -1; i < n; i++ {
		for _, k := range kinds {
			for _, v := range variants {
				add, del, err := cycle(ctx, v.mgr, fmt.Sprintf("cnibench-%d", i+1), k.ports)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", v.name, k.name, err)
				}
				if i >= 0 {
					v.add[k.name] = append(v.add[k.name], add)
					v.del[k.name] = append(v.del[k.name], del)
				}
			}
		}
	}
	fmt.Printf("| variant | pod | ADD median | ADD p90 | DEL median | DEL p90 |\n|---|---|--:|--:|--:|--:|\n")
	for _, k := range kinds {
		for _, v := range variants {
			fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", v.name, k.name,
				quantile(v.add[k.name], 0.5), quantile(v.add[k.name], 0.9),
				quantile(v.del[k.name], 0.5), quantile(v.del[k.name], 0.9))
		}
	}
	return nil
}

func newManager(dir string, v *variant, subnet string) (*cni.Manager, error) {
	conf, err := cni.BridgeNetwork{Name: "cnibench", Bridge: "cnibench0", Subnet: subnet, NFTables: v.nftables}.Conflist()
	if err != nil {
		return nil, err
	}
	confDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-cnibench.conflist"), conf, 0o644); err != nil {
		return nil, err
	}
	m, err := cni.NewManager(cni.Config{ConfDir: confDir, BinDirs: []string{v.binDir}, CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		return nil, err
	}
	return m, m.Ready()
}

// cycle makes a network namespace, times ADD and DEL on it, and removes it.
func cycle(ctx context.Context, m *cni.Manager, name string, ports []cni.PortMapping) (add, del time.Duration, err error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("ip netns add: %w: %s", err, out)
	}
	defer func() { _ = exec.Command("ip", "netns", "del", name).Run() }() // a leak shows in the next add
	pod := cni.Pod{ID: name, Name: name, Namespace: "cnibench", UID: name, NetNS: "/run/netns/" + name, PortMappings: ports}
	start := time.Now()
	if _, err := m.Attach(ctx, pod); err != nil {
		return 0, 0, err
	}
	add = time.Since(start)
	start = time.Now()
	if err := m.Detach(ctx, pod); err != nil {
		return 0, 0, err
	}
	return add, time.Since(start), nil
}

// quantile is nearest-rank.
func quantile(d []time.Duration, q float64) string {
	if len(d) == 0 {
		return "n/a"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	i = max(0, min(i, len(s)-1))
	return fmt.Sprintf("%.1f ms", float64(s[i].Microseconds())/1000)
}

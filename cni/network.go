package cni

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"k8s.io/klog/v2"
)

// DefaultNetworkFile is the name of the built-in bridge network's config.
const DefaultNetworkFile = "10-criserver-bridge.conflist"

// ErrNotReady is returned while no network configuration is loadable.
var ErrNotReady = errors.New("no CNI network configuration found")

// Manager owns the pod network configuration. It re-reads the conf dir on
// every call that needs it so that a change is picked up without restart;
// reading one small file is far cheaper than the plugin exec that follows.
type Manager struct {
	cfg Config
	cni *libcni.CNIConfig

	mu        sync.Mutex
	lastError string
}

// NewManager returns a Manager for cfg. It installs the default network
// when enabled and the conf dir holds none.
func NewManager(cfg Config) (*Manager, error) {
	m := &Manager{
		cfg: cfg,
		cni: libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, nil),
	}
	if cfg.InstallDefaultNetwork {
		if err := m.installDefaultNetwork(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Network loads the first network configuration in the conf dir.
func (m *Manager) Network() (*libcni.NetworkConfigList, error) {
	list, err := m.network()
	m.noteError(err)
	return list, err
}

func (m *Manager) network() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(m.cfg.ConfDir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, fmt.Errorf("%w in %s: %v", ErrNotReady, m.cfg.ConfDir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNotReady, m.cfg.ConfDir)
	}
	// ConfFiles sorts; the first loadable file wins, as in containerd and CRI-O.
	var errs []error
	for _, f := range files {
		nets, err := loadFile(f)
		if err == nil {
			return nets, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w in %s: %w", ErrNotReady, m.cfg.ConfDir, errors.Join(errs...))
}

// noteError logs a configuration problem once, not on every poll.
func (m *Manager) noteError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if msg != "" && msg != m.lastError {
		klog.ErrorS(nil, "CNI network configuration not usable", "reason", msg)
	}
	m.lastError = msg
}

// Ready reports whether a pod network can be set up now: a network
// configuration loads and every plugin it names is installed.
func (m *Manager) Ready() error {
	err := m.ready()
	m.noteError(err)
	return err
}

func (m *Manager) ready() error {
	list, err := m.network()
	if err != nil {
		return err
	}
	for _, p := range list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, m.cfg.BinDirs); err != nil {
			return fmt.Errorf("%w: network %s: plugin %q not found in %v", ErrNotReady, list.Name, p.Network.Type, m.cfg.BinDirs)
		}
	}
	return nil
}

func loadFile(path string) (*libcni.NetworkConfigList, error) {
	if filepath.Ext(path) == ".conflist" {
		l, err := libcni.ConfListFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		if len(l.Plugins) == 0 {
			return nil, fmt.Errorf("load %s: no plugins", path)
		}
		return l, nil
	}
	// A single-plugin .conf file is still a configuration users have;
	// libcni deprecates the format but still loads it.
	c, err := libcni.ConfFromFile(path) //nolint:staticcheck // SA1019, see above
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	l, err := libcni.ConfListFromConf(c) //nolint:staticcheck // SA1019, see above
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return l, nil
}

func (m *Manager) installDefaultNetwork() error {
	files, err := libcni.ConfFiles(m.cfg.ConfDir, []string{".conflist", ".conf", ".json"})
	if err == nil && len(files) > 0 {
		return nil
	}
	if err := os.MkdirAll(m.cfg.ConfDir, 0o755); err != nil {
		return fmt.Errorf("create CNI conf dir: %w", err)
	}
	data, err := defaultNetwork(m.cfg.DefaultSubnet)
	if err != nil {
		return err
	}
	path := filepath.Join(m.cfg.ConfDir, DefaultNetworkFile)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("install default CNI network: %w", err)
	}
	klog.InfoS("Installed default CNI network", "path", path, "subnet", m.cfg.DefaultSubnet)
	return nil
}

func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	if !p.Addr().Is4() || p.Bits() > 30 {
		return p, fmt.Errorf("%q: want an IPv4 prefix of /30 or wider", s)
	}
	return p.Masked(), nil
}

// BridgeNetwork is the shape of the built-in network: a bridge with a
// gateway, masquerading and hairpin, host-local IPAM over one IPv4 subnet,
// and the portmap, bandwidth and firewall plugins.
type BridgeNetwork struct {
	Name, Bridge, Subnet string
	// NFTables selects the nftables backends of bridge's masquerading and
	// of portmap (containernetworking/plugins v1.6 and later): one netlink
	// transaction each instead of a run of iptables processes. Older
	// plugins ignore the keys and use iptables. The firewall plugin has no
	// nftables backend and stays on iptables.
	NFTables bool
}

// Conflist renders the network's configuration list.
func (n BridgeNetwork) Conflist() ([]byte, error) {
	p, err := parseSubnet(n.Subnet)
	if err != nil {
		return nil, err
	}
	masqBackend, portmapBackend := "", ""
	if n.NFTables {
		masqBackend = `
      "ipMasqBackend": "nftables",`
		portmapBackend = `, "backend": "nftables"`
	}
	return fmt.Appendf(nil, `{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": true,%s
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "%s", "gateway": "%s" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }%s },
    { "type": "bandwidth", "capabilities": { "bandwidth": true } },
    { "type": "firewall" }
  ]
}
`, n.Name, n.Bridge, masqBackend, p, p.Addr().Next(), portmapBackend), nil
}

func defaultNetwork(subnet string) ([]byte, error) {
	data, err := BridgeNetwork{Name: "criserver", Bridge: "criserver0", Subnet: subnet}.Conflist()
	if err != nil {
		return nil, fmt.Errorf("default_subnet: %w", err)
	}
	return data, nil
}

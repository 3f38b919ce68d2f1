// Package cni wraps libcni: it finds the pod network configuration, and
// attaches and detaches pod network namespaces.
package cni

import (
	"errors"
	"fmt"
)

// Config is the [cni] section of the daemon configuration.
type Config struct {
	// ConfDir holds *.conflist / *.conf / *.json; the first in lexical order is used.
	ConfDir string `toml:"conf_dir"`
	// BinDirs are searched in order for plugin binaries.
	BinDirs []string `toml:"bin_dirs"`
	// CacheDir is libcni's result cache, needed for DEL and CHECK; empty
	// means <state>/cni-cache.
	CacheDir string `toml:"cache_dir"`
	// InstallDefaultNetwork writes DefaultNetworkFile when ConfDir holds no
	// network, so a fresh node has working pod networking.
	InstallDefaultNetwork bool `toml:"install_default_network"`
	// DefaultSubnet is the IPv4 range of the built-in bridge network.
	DefaultSubnet string `toml:"default_subnet"`
}

// DefaultConfig works on a Debian host with containernetworking-plugins.
func DefaultConfig() Config {
	return Config{
		ConfDir:               "/etc/cni/net.d",
		BinDirs:               []string{"/usr/lib/cni", "/opt/cni/bin"},
		InstallDefaultNetwork: true,
		DefaultSubnet:         "10.87.0.0/16",
	}
}

// Validate names the offending key.
func (c Config) Validate() error {
	if c.ConfDir == "" {
		return errors.New("conf_dir: must not be empty")
	}
	if len(c.BinDirs) == 0 {
		return errors.New("bin_dirs: must name at least one directory")
	}
	if _, err := parseSubnet(c.DefaultSubnet); err != nil {
		return fmt.Errorf("default_subnet: %w", err)
	}
	return nil
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/imagestore"
	"github.com/criserver/criserver/nri"
	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/podmetrics"
	"github.com/criserver/criserver/sandbox"
	"github.com/criserver/criserver/streaming"
)

const defaultConfigPath = "/etc/criserver/config.toml"

// Config is the daemon configuration: built-in defaults, then the config
// file, then config.d drop-ins in lexical order, then flags.
type Config struct {
	// Root holds what survives reboots: layers, images, records.
	Root string `toml:"root"`
	// State holds what a reboot clears: socket, netns pins, exit files.
	State string `toml:"state"`
	// Listen is the unix socket serving the CRI.
	Listen string `toml:"listen"`
	// MetricsAddress serves Prometheus metrics over HTTP when set (host:port).
	MetricsAddress string `toml:"metrics_address"`
	// CgroupDriver is "cgroupfs" or "systemd", and must match the kubelet's.
	CgroupDriver string `toml:"cgroup_driver"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight calls.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`

	CNI     cni.Config        `toml:"cni"`
	Image   imagestore.Config `toml:"image"`
	Runtime oci.Config        `toml:"runtime"`
	Stream  streaming.Config  `toml:"stream"`
	Sandbox sandbox.Config    `toml:"sandbox"`
	Stats   podmetrics.Config `toml:"stats"`
	NRI     nri.Config        `toml:"nri"`
}

func defaultConfig() Config {
	return Config{
		Root:            "/var/lib/criserver",
		State:           "/run/criserver",
		Listen:          "/run/criserver/criserver.sock",
		CgroupDriver:    string(cgroups.Cgroupfs),
		ShutdownTimeout: 10 * time.Second,
		CNI:             cni.DefaultConfig(),
		Image:           imagestore.DefaultConfig(),
		Runtime:         oci.DefaultConfig(),
		Stream:          streaming.DefaultConfig(),
		Sandbox:         sandbox.DefaultConfig(),
		Stats:           podmetrics.DefaultConfig(),
		NRI:             nri.DefaultConfig(),
	}
}

// validate checks every section and names the offending key.
func (c *Config) validate() error {
	for key, p := range map[string]string{"root": c.Root, "state": c.State, "listen": c.Listen} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%s: %q is not an absolute path", key, p)
		}
	}
	if _, err := cgroups.ParseDriver(c.CgroupDriver); err != nil {
		return fmt.Errorf("cgroup_driver: %w", err)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("shutdown_timeout: %v must be positive", c.ShutdownTimeout)
	}
	sections := []struct {
		name string
		err  error
	}{
		{"cni", c.CNI.Validate()},
		{"image", c.Image.Validate()},
		{"runtime", c.Runtime.Validate()},
		{"stream", c.Stream.Validate()},
		{"sandbox", c.Sandbox.Validate()},
		{"stats", c.Stats.Validate()},
		{"nri", c.NRI.Validate()},
	}
	for _, s := range sections {
		if s.err != nil {
			return fmt.Errorf("%s.%w", s.name, s.err)
		}
	}
	return nil
}

// fillDerived sets the defaults that follow from root and state, so that
// moving --state moves everything under it.
func (c *Config) fillDerived() {
	if c.CNI.CacheDir == "" {
		c.CNI.CacheDir = filepath.Join(c.State, "cni-cache")
	}
	c.Runtime.FillDerived(c.State)
}

// configFiles lists the main file and its drop-ins in the order they apply.
// An explicitly named file must exist; the default one may be absent.
func configFiles(path string, explicit bool) ([]string, error) {
	var files []string
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	} else if explicit || !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	dropins, err := filepath.Glob(filepath.Join(filepath.Dir(path), "config.d", "*.toml"))
	if err != nil {
		return nil, err
	}
	slices.Sort(dropins)
	return append(files, dropins...), nil
}

// loadConfig applies each file over the defaults, refusing unknown keys and
// invalid values with the key and the file named.
func loadConfig(path string, explicit bool) (Config, error) {
	cfg := defaultConfig()
	files, err := configFiles(path, explicit)
	if err != nil {
		return cfg, err
	}
	for _, f := range files {
		if err := applyFile(&cfg, f); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func applyFile(cfg *Config, file string) error {
	md, err := toml.DecodeFile(file, cfg)
	if err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return fmt.Errorf("config %s: unknown key %s", file, strings.Join(keys, ", "))
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	return nil
}

func (c Config) encode() ([]byte, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

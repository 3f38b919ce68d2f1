package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var criserverNetwork = network{name: "criserver-bench-criserver", bridge: "cbench-cs0", subnet: "10.202.0.0/16"}

// criserverConfig keeps every path of the daemon under dir. The local
// registry needs no entry: 127.0.0.1 registries are plain HTTP by default.
// handler, when set, pins the default runtime handler (else the daemon
// picks crun where it runs, as on any node). With nri, NRI is on, its
// socket is nriSocket(dir) and no plugin starts from a plugin directory.
func criserverConfig(dir, handler string, nri bool) string {
	cfg := fmt.Sprintf(`root = %q
state = %q
listen = %q

[cni]
conf_dir = %q
install_default_network = false

[runtime]
default_handler = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "criserver.sock"), filepath.Join(dir, "cni"), handler)
	if nri {
		cfg += fmt.Sprintf(`
[nri]
enable = true
socket_path = %q
plugin_path = %q
plugin_config_path = %q
`, nriSocket(dir), filepath.Join(dir, "nri-plugins"), filepath.Join(dir, "nri-conf.d"))
	}
	return cfg
}

func nriSocket(dir string) string { return filepath.Join(dir, "nri.sock") }

func startCriserver(ctx context.Context, dir, binary, handler string, callTimeout time.Duration, extraFlags []string, nriPlugin string) (*daemon, error) {
	d := &daemon{name: rtCriserver, socket: filepath.Join(dir, "criserver.sock"), dir: dir, bridge: criserverNetwork.bridge, network: criserverNetwork.name}
	if err := writeNetwork(filepath.Join(dir, "cni"), filepath.Join(dir, "cni-ipam"), criserverNetwork); err != nil {
		return nil, fmt.Errorf("criserver CNI config: %w", err)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(criserverConfig(dir, handler, nriPlugin != "")), 0o644); err != nil {
		return nil, err
	}
	argv := append([]string{binary, "--config", cfgPath}, extraFlags...)
	var err error
	d.proc, err = startProcess(rtCriserver, filepath.Join(dir, "criserver.log"), argv...)
	if err != nil {
		return nil, err
	}
	// On failure d is returned too: the caller cleans up what it made.
	if err := d.connect(ctx, callTimeout); err != nil || nriPlugin == "" {
		return d, err
	}
	d.plugin, err = startProcess("nri-plugin", filepath.Join(dir, "nri-plugin.log"), nriPlugin, "-socket", nriSocket(dir))
	if err != nil {
		return d, err
	}
	return d, waitForLog(ctx, d.proc.logPath, "connected and synchronized", 30*time.Second)
}

// waitForLog waits until the log at path holds text.
func waitForLog(ctx context.Context, path, text string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), text) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%q not in %s after %v", text, path, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

var criserverNetwork = network{name: "criserver-bench-criserver", bridge: "cbench-cs0", subnet: "10.202.0.0/16"}

// criserverConfig keeps every path of the daemon under dir. The local
// registry needs no entry: 127.0.0.1 registries are plain HTTP by default.
// handler, when set, pins the default runtime handler (else the daemon
// picks crun where it runs, as on any node).
func criserverConfig(dir, handler string) string {
	return fmt.Sprintf(`root = %q
state = %q
listen = %q

[cni]
conf_dir = %q
install_default_network = false

[runtime]
default_handler = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "criserver.sock"), filepath.Join(dir, "cni"), handler)
}

func startCriserver(ctx context.Context, dir, binary, handler string, callTimeout time.Duration, extraFlags []string) (*daemon, error) {
	d := &daemon{name: rtCriserver, socket: filepath.Join(dir, "criserver.sock"), dir: dir, bridge: criserverNetwork.bridge, network: criserverNetwork.name}
	if err := writeNetwork(filepath.Join(dir, "cni"), filepath.Join(dir, "cni-ipam"), criserverNetwork); err != nil {
		return nil, fmt.Errorf("criserver CNI config: %w", err)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(criserverConfig(dir, handler)), 0o644); err != nil {
		return nil, err
	}
	argv := append([]string{binary, "--config", cfgPath}, extraFlags...)
	var err error
	d.proc, err = startProcess(rtCriserver, filepath.Join(dir, "criserver.log"), argv...)
	if err != nil {
		return nil, err
	}
	// On failure d is returned too: the caller cleans up what it made.
	return d, d.connect(ctx, callTimeout)
}

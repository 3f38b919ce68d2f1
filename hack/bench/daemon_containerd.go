package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/criserver/criserver/test/containerdconf"
)

var containerdNetwork = network{name: "criserver-bench-containerd", bridge: "cbench-ctd0", subnet: "10.203.0.0/16"}

// containerdConfig is containerd's config for the benchmark: everything
// under dir, the same runc and CNI plugins as criserver, the local registry
// over plain HTTP (certs.d), and warnings only in the log.
func containerdConfig(dir, pauseRef, runcPath string) containerdconf.Config {
	c := containerdconf.Under(dir, runcPath)
	c.SandboxImage = pauseRef
	c.LogLevel = "warn"
	c.RegistryConfigPath = filepath.Join(dir, "certs.d")
	return c
}

func startContainerd(ctx context.Context, dir string, reg *registry, pauseRef string, callTimeout time.Duration) (*daemon, error) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	conf := containerdConfig(dir, pauseRef, runc)
	cfg, err := conf.Render()
	if err != nil {
		return nil, err
	}
	d := &daemon{name: rtContainerd, socket: conf.Address, dir: dir, bridge: containerdNetwork.bridge, network: containerdNetwork.name}
	// The local registry itself, over plain HTTP.
	local := "http://" + reg.Addr
	if err := containerdconf.WriteHosts(conf.RegistryConfigPath, reg.Addr, containerdconf.Hosts{Server: local, Host: local}); err != nil {
		return nil, err
	}
	if err := writeNetwork(conf.CNIConfDir, filepath.Join(dir, "cni-ipam"), containerdNetwork); err != nil {
		return nil, fmt.Errorf("containerd CNI config: %w", err)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return nil, err
	}
	d.proc, err = startProcess(rtContainerd, filepath.Join(dir, "containerd.log"), "containerd", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	// On failure d is returned too: the caller cleans up what it made.
	return d, d.connect(ctx, callTimeout)
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

var containerdNetwork = network{name: "criserver-bench-containerd", bridge: "cbench-ctd0", subnet: "10.203.0.0/16"}

// containerdConfig is a config (version 2, containerd 1.6 as Debian 12
// ships it) for the CRI plugin with everything under dir: the same runc,
// the same CNI plugins, the local registry over plain HTTP, and
// restrict_oom_score_adj because this host refuses negative values.
func containerdConfig(dir, pauseRef, runcPath string) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
oom_score = 0

[grpc]
  address = %[3]q

[ttrpc]
  address = ""

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %[4]q

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = %[5]q
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    max_concurrent_downloads = 3

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = %[6]q
      max_conf_num = 1

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = %[7]q
          Root = %[8]q
          SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = %[9]q
`,
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "containerd.sock"),
		filepath.Join(dir, "opt"), pauseRef, filepath.Join(dir, "cni"), runcPath,
		filepath.Join(dir, "state", "runc"), filepath.Join(dir, "certs.d"))
}

// hostsToml points containerd at the local registry over plain HTTP.
func hostsToml(addr string) string {
	return fmt.Sprintf(`server = "http://%[1]s"

[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
`, addr)
}

func startContainerd(ctx context.Context, dir string, reg *registry, pauseRef string, callTimeout time.Duration) (*daemon, error) {
	d := &daemon{name: rtContainerd, socket: filepath.Join(dir, "containerd.sock"), dir: dir, bridge: containerdNetwork.bridge, network: containerdNetwork.name}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	hostsDir := filepath.Join(dir, "certs.d", reg.Addr)
	if err := os.MkdirAll(hostsDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(hostsDir, "hosts.toml"), []byte(hostsToml(reg.Addr)), 0o644); err != nil {
		return nil, err
	}
	if err := writeNetwork(filepath.Join(dir, "cni"), filepath.Join(dir, "cni-ipam"), containerdNetwork); err != nil {
		return nil, fmt.Errorf("containerd CNI config: %w", err)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(containerdConfig(dir, pauseRef, runc)), 0o644); err != nil {
		return nil, err
	}
	d.proc, err = startProcess(rtContainerd, filepath.Join(dir, "containerd.log"), "containerd", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	// On failure d is returned too: the caller cleans up what it made.
	return d, d.connect(ctx, callTimeout)
}

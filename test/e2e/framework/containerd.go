package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cni"
)

// Containerd is a containerd process (Debian's 1.6, installed by
// hack/containerd/install.sh) with its root, state, socket, config and CNI
// network under one temp dir: the reference runtime the conformance suites
// also run against, side by side with criserver.
type Containerd struct {
	Dir    string
	Socket string

	Runtime runtime.RuntimeServiceClient
	Image   runtime.ImageServiceClient

	cmd  *exec.Cmd
	done chan struct{}
	conn *grpc.ClientConn
}

// containerdNetwork is containerd's pod network: its own bridge, subnet and
// host-local range, so that nothing of criserver's default network is
// shared, and all of it is removed at cleanup.
var containerdNetwork = cni.BridgeNetwork{Name: "criserver-e2e-containerd", Bridge: "ctde2e0", Subnet: "10.205.0.0/16"}

// StartContainerd starts containerd with its CRI plugin and connects to it.
// mirrors maps upstream registry names (registry.k8s.io) to the local
// registry's URL of their copies (http://127.0.0.1:port/registry.k8s.io),
// written as containerd's hosts.toml files; pause is the sandbox image.
// Cleanup removes every pod through the CRI (so that containerd tears down
// its shims, mounts, network namespaces and cgroups itself), stops
// containerd, checks that none of its processes and mounts are left, and
// removes its network and directories.
func StartContainerd(t testing.TB, mirrors map[string]string, pause string) *Containerd {
	t.Helper()
	Require(t)
	bin, err := exec.LookPath("containerd")
	if err != nil {
		Unsupported(t, "containerd is not installed (hack/containerd/install.sh installs Debian's)")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatalf("containerd: %v", err)
	}
	dir, err := os.MkdirTemp("", "ctde2e-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "containerd.sock")}
	t.Cleanup(func() { c.cleanup(t) })
	if err := c.writeConfig(mirrors, pause, runc); err != nil {
		t.Fatalf("containerd config: %v", err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, "--config", filepath.Join(dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	c.done = make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	if err := c.connect(); err != nil {
		t.Fatalf("containerd did not come up: %v (log in %s)", err, logf.Name())
	}
	return c
}

// containerdConfig is a version 2 config (containerd 1.6) with everything
// under dir, runc's state too (its default is /run/containerd/runc). The host refuses negative oom_score_adj, hence
// restrict_oom_score_adj; systemd is not PID 1, hence cgroupfs.
const containerdConfig = `version = 2
root = %[1]q
state = %[2]q
oom_score = 0

[grpc]
  address = %[3]q

[ttrpc]
  address = ""

[debug]
  address = ""

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

      # The handler Kubernetes' e2e specs of RuntimeClass (and PodOverhead)
      # expect a node to have, as upstream CI configures it: runc again.
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler.options]
          BinaryName = %[7]q
          Root = %[8]q
          SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = %[9]q
`

// hostsToml sends pulls of an upstream registry to its mirror on the local
// registry. The mirror URL is the API root of the copies
// (http://addr/v2/registry.k8s.io), hence override_path: containerd
// appends the repository to it as it is, without adding /v2.
const hostsToml = `server = "https://%[1]s"

[host."%[2]s"]
  capabilities = ["pull", "resolve"]
  override_path = true
`

func (c *Containerd) writeConfig(mirrors map[string]string, pause, runc string) error {
	conf := fmt.Sprintf(containerdConfig,
		filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"), c.Socket, filepath.Join(c.Dir, "opt"),
		pause, filepath.Join(c.Dir, "cni"), runc, filepath.Join(c.Dir, "state", "runc"), filepath.Join(c.Dir, "certs.d"))
	if err := os.WriteFile(filepath.Join(c.Dir, "config.toml"), []byte(conf), 0o644); err != nil {
		return err
	}
	for upstream, mirror := range mirrors {
		hosts := filepath.Join(c.Dir, "certs.d", upstream)
		if err := os.MkdirAll(hosts, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(hosts, "hosts.toml"), fmt.Appendf(nil, hostsToml, upstream, mirror), 0o644); err != nil {
			return err
		}
	}
	network, err := containerdNetwork.Conflist()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "cni"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Dir, "cni", "10-containerd.conflist"), network, 0o644)
}

func (c *Containerd) connect() error {
	conn, err := grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	c.conn = conn
	c.Runtime = runtime.NewRuntimeServiceClient(conn)
	c.Image = runtime.NewImageServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ready := make(chan error, 1)
	go func() {
		_, err := c.Runtime.Version(ctx, &runtime.VersionRequest{}, grpc.WaitForReady(true))
		ready <- err
	}()
	select {
	case err := <-ready:
		return err
	case <-c.done:
		return fmt.Errorf("containerd exited: %v", c.cmd.ProcessState)
	}
}

// cleanup removes the pods, stops containerd and checks that it left
// nothing: no process naming its directory (shims), no mount under it.
// Then it removes the bridge, the host-local range, the shims' socket
// directory when empty, and the directory.
func (c *Containerd) cleanup(t testing.TB) {
	t.Helper()
	if c.Runtime != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if pods, err := c.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); err == nil {
			for _, p := range pods.Items {
				_, _ = c.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id})
				if _, err := c.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					t.Errorf("containerd: remove pod %s: %v", p.Id, err)
				}
			}
		}
		cancel()
	}
	if c.conn != nil {
		c.conn.Close()
	}
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
			t.Errorf("containerd did not stop on SIGTERM within 30s")
		}
	}
	var left []string
	// Shims run with -address <dir>/containerd.sock.
	if !Poll(10*time.Second, func() bool { return len(ProcessesMentioning(c.Dir)) == 0 }) {
		for _, pid := range ProcessesMentioning(c.Dir) {
			left = append(left, fmt.Sprintf("process %d", pid))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	mounts, err := MountsUnder(c.Dir)
	if err != nil {
		t.Error(err)
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		left = append(left, "mount "+mounts[i])
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
	if len(left) > 0 {
		t.Errorf("containerd left %s", strings.Join(left, ", "))
	}
	if out, err := exec.Command("ip", "link", "del", containerdNetwork.Bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
		t.Errorf("delete bridge %s: %v: %s", containerdNetwork.Bridge, err, out)
	}
	if err := os.RemoveAll(filepath.Join("/var/lib/cni/networks", containerdNetwork.Name)); err != nil {
		t.Error(err)
	}
	// containerd 1.6 puts shim sockets in /run/containerd/s whatever its
	// state directory; both go when nothing else (a host containerd) uses
	// them.
	for _, d := range []string{"/run/containerd/s", "/run/containerd"} {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			t.Error(err)
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Errorf("remove %s: %v", c.Dir, err)
	}
}

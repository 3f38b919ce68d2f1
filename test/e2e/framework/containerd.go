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
	"github.com/criserver/criserver/test/containerdconf"
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
	conf := containerdConfig(dir, pause, runc)
	c := &Containerd{Dir: dir, Socket: conf.Address}
	t.Cleanup(func() { c.cleanup(t) })
	if err := c.writeConfig(conf, mirrors); err != nil {
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

// containerdConfig is containerd's config for the e2e suites: everything
// under dir, a hosts.toml per mirrored registry under dir/certs.d, and a
// second runtime handler, test-handler: the one Kubernetes' e2e specs of
// RuntimeClass (and PodOverhead) expect a node to have, as upstream CI
// configures it (runc again).
func containerdConfig(dir, pause, runc string) containerdconf.Config {
	c := containerdconf.Under(dir, runc)
	c.SandboxImage = pause
	c.RegistryConfigPath = filepath.Join(dir, "certs.d")
	handler := c.Runtimes[0]
	handler.Name = "test-handler"
	c.Runtimes = append(c.Runtimes, handler)
	return c
}

// writeConfig writes config.toml, the mirrors' hosts.toml files and the CNI
// network. A mirror URL is the API root of the copies
// (http://addr/v2/registry.k8s.io), hence OverridePath.
func (c *Containerd) writeConfig(conf containerdconf.Config, mirrors map[string]string) error {
	data, err := conf.Render()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "config.toml"), data, 0o644); err != nil {
		return err
	}
	for upstream, mirror := range mirrors {
		h := containerdconf.Hosts{Server: "https://" + upstream, Host: mirror, OverridePath: true}
		if err := containerdconf.WriteHosts(conf.RegistryConfigPath, upstream, h); err != nil {
			return err
		}
	}
	network, err := containerdNetwork.Conflist()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(conf.CNIConfDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(conf.CNIConfDir, "10-containerd.conflist"), network, 0o644)
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

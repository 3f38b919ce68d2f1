package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

// daemon is one CRI runtime under test.
type daemon struct {
	name     string
	socket   string
	dir      string   // everything the harness made for it lives here
	proc     *process // nil when the harness did not start it
	bridge   string   // CNI bridge the harness configured, removed at the end
	pidCache int

	rt  internalapi.RuntimeService
	img internalapi.ImageManagerService
}

// network is the CNI bridge network given to one runtime: the same shape as
// criserver's built-in default (cni/network.go), with a bridge and subnet
// of its own so that both runtimes can run at once.
type network struct {
	name, bridge, subnet string
}

func (n network) conflist(ipamDir string) (string, error) {
	p, err := netip.ParsePrefix(n.subnet)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": %q, "gateway": %q }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "bandwidth", "capabilities": { "bandwidth": true } },
    { "type": "firewall" }
  ]
}
`, n.name, n.bridge, ipamDir, p.Masked().String(), p.Masked().Addr().Next().String()), nil
}

func writeNetwork(confDir, ipamDir string, n network) error {
	conf, err := n.conflist(ipamDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(confDir, "10-"+n.name+".conflist"), []byte(conf), 0o644)
}

// connect dials the daemon's CRI socket with the kubelet's own client.
func (d *daemon) connect(ctx context.Context, callTimeout time.Duration) error {
	endpoint := "unix://" + d.socket
	err := waitFor(ctx, 60*time.Second, func() error {
		if _, err := os.Stat(d.socket); err != nil {
			return err
		}
		rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).
			WithConnectionTimeout(callTimeout).WithTracerProvider(nil).Build(ctx)
		if err != nil {
			return err
		}
		d.rt = rt
		return nil
	}, d.proc)
	if err != nil {
		return fmt.Errorf("%s at %s: %w", d.name, d.socket, err)
	}
	d.img, err = remote.NewRemoteImageServiceBuilder().WithEndpoint(endpoint).
		WithConnectionTimeout(callTimeout).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		return fmt.Errorf("%s image service: %w", d.name, err)
	}
	return nil
}

// pid is the daemon's process: the one the harness started, else the one
// listening on the socket.
func (d *daemon) pid() (int, error) {
	if d.proc != nil {
		return d.proc.Pid(), nil
	}
	if d.pidCache == 0 {
		pid, err := pidBySocket(d.socket)
		if err != nil {
			return 0, err
		}
		d.pidCache = pid
	}
	return d.pidCache, nil
}

// cgroupParent is the cgroup under which the harness puts this runtime's
// pods, so that it can find and remove what is left.
func (d *daemon) cgroupParent() string { return "/criserver-bench-" + d.name }

func (d *daemon) stop() {
	if d.rt != nil {
		d.rt.Close(context.Background())
	}
	if d.img != nil {
		d.img.Close(context.Background())
	}
	if d.proc != nil {
		d.proc.Stop(30 * time.Second)
	}
}

func shortName(s string) string { return strings.ReplaceAll(s, "/", "_") }

package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
)

// daemon is one CRI runtime under test.
type daemon struct {
	name     string
	socket   string
	dir      string   // everything the harness made for it lives here
	proc     *process // nil when the harness did not start it
	plugin   *process // the NRI plugin connected to it (-nri-plugin), or nil
	bridge   string   // CNI bridge the harness configured, removed at the end
	network  string   // name of that CNI network, which tags its NAT rules
	pidCache int

	rt  internalapi.RuntimeService
	img imageService

	imgCloser interface{ Close(context.Context) error }
	imgConn   *grpc.ClientConn
	// rawConn is a plain gRPC connection for calls timed without the
	// kubelet client's decoding (rawcall.go).
	rawConn *grpc.ClientConn

	timeouts atomic.Int32 // calls that ran out of time; see hung
}

// maxTimeouts is how many timed-out calls make a daemon count as hung: the
// rest of the run skips it rather than wait out every call.
const maxTimeouts = 3

// noteErr counts err if it is a timeout.
func (d *daemon) noteErr(err error) {
	if status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		if d.timeouts.Add(1) == maxTimeouts {
			klog.ErrorS(err, "Daemon counts as hung; skipping it from now on", "runtime", d.name)
		}
	}
}

func (d *daemon) hung() bool { return d.timeouts.Load() >= maxTimeouts }

// imageService is the part of the image API the workload calls.
type imageService interface {
	PullImage(ctx context.Context, image *runtime.ImageSpec, auth *runtime.AuthConfig, pod *runtime.PodSandboxConfig) (string, error)
	RemoveImage(ctx context.Context, image *runtime.ImageSpec) error
}

// rawImageService calls the image API without the kubelet client's
// start-up check (ImageFsInfo), for a daemon that does not have every
// image RPC yet: the calls it does have are still measured.
type rawImageService struct {
	c       runtime.ImageServiceClient
	timeout time.Duration
}

func (r rawImageService) PullImage(ctx context.Context, image *runtime.ImageSpec, auth *runtime.AuthConfig, pod *runtime.PodSandboxConfig) (string, error) {
	resp, err := r.c.PullImage(ctx, &runtime.PullImageRequest{Image: image, Auth: auth, SandboxConfig: pod})
	if err != nil {
		return "", err
	}
	return resp.ImageRef, nil
}

func (r rawImageService) RemoveImage(ctx context.Context, image *runtime.ImageSpec) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	_, err := r.c.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: image})
	return err
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
	if d.rawConn, err = grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return fmt.Errorf("%s: %w", d.name, err)
	}
	img, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(endpoint).
		WithConnectionTimeout(callTimeout).WithTracerProvider(nil).Build(ctx)
	switch {
	case err == nil:
		d.img, d.imgCloser = img, img
	case isUnimplemented(err):
		klog.InfoS("Image service lacks an RPC the kubelet client checks; calling it directly", "runtime", d.name, "err", err)
		conn, err := grpc.NewClient("unix://"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("%s image service: %w", d.name, err)
		}
		d.img, d.imgConn = rawImageService{c: runtime.NewImageServiceClient(conn), timeout: callTimeout}, conn
	default:
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
	if d.imgCloser != nil {
		d.imgCloser.Close(context.Background())
	}
	if d.imgConn != nil {
		d.imgConn.Close()
	}
	if d.rawConn != nil {
		d.rawConn.Close()
	}
	if d.plugin != nil {
		d.plugin.Stop(5 * time.Second)
	}
	if d.proc != nil {
		d.proc.Stop(30 * time.Second)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cri"
)

// serve runs the daemon until ctx is cancelled, then drains and cleans up.
func serve(ctx context.Context, cfg Config) error {
	if err := markInheritedFDsCloseOnExec(); err != nil {
		return err
	}
	for _, dir := range []string{cfg.Root, cfg.State} {
		// Traversable, not listable: root in a user namespace is another
		// host uid, and must reach its container's rootfs and pod files.
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			return fmt.Errorf("chmod %s: %w", dir, err)
		}
	}
	unlock, err := lockState(cfg.State)
	if err != nil {
		return err
	}
	defer unlock()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := cri.NewMetrics(reg)

	svc, closeSvc, err := newService(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeSvc()

	lis, err := listenUnix(cfg.Listen)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Listen)

	srv := svc.NewServer(
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{metrics.UnaryInterceptor(), cri.UnaryErrorCodes}, faultInterceptors()...)...),
		grpc.ChainStreamInterceptor(metrics.StreamInterceptor(), cri.StreamErrorCodes),
		grpc.MaxRecvMsgSize(16<<20),
		grpc.MaxSendMsgSize(64<<20),
	)

	if cfg.MetricsAddress != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsAddress, reg)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	klog.InfoS("criserver serving", "version", version, "socket", cfg.Listen, "root", cfg.Root, "state", cfg.State)
	notifySystemd(daemon.SdNotifyReady)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve %s: %w", cfg.Listen, err)
	case <-ctx.Done():
	}
	klog.InfoS("Shutting down: draining in-flight calls", "timeout", cfg.ShutdownTimeout)
	notifySystemd(daemon.SdNotifyStopping)
	drain(srv, cfg.ShutdownTimeout)
	return nil
}

// notifySystemd tells a Type=notify unit's systemd that the daemon is
// serving or stopping; without NOTIFY_SOCKET it does nothing.
func notifySystemd(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		klog.ErrorS(err, "Notify systemd", "state", state)
	}
}

// drain stops accepting and waits for in-flight calls, cutting them off
// after timeout so a hung call cannot block shutdown.
func drain(srv *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		klog.InfoS("In-flight calls did not finish in time; closing them", "timeout", timeout)
		srv.Stop()
		<-done
	}
}

// lockState refuses a second daemon on the same state dir. The kernel drops
// a flock when its holder dies, so a crash never leaves a stale lock.
func lockState(stateDir string) (func(), error) {
	path := filepath.Join(stateDir, "criserver.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another criserver (pid %s) is running with state dir %s: lock %s is held",
				strings.TrimSpace(string(holder)), stateDir, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The PID is for operators reading the file; the lock is what counts.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// listenUnix creates the CRI socket. Holding the state lock proves that a
// socket file already there is a leftover of a crashed daemon, not a live one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if err := os.Remove(path); err == nil {
		klog.InfoS("Replaced stale socket", "path", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return lis, nil
}

func serveMetrics(addr string, reg *prometheus.Registry) (func(), error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Metrics server stopped")
		}
	}()
	klog.InfoS("Serving metrics", "address", lis.Addr().String())
	return func() { hs.Close() }, nil
}

// Package nri hosts Node Resource Interface plugins
// (github.com/containerd/nri). It shows them the daemon's pods and
// containers at each lifecycle step, applies the adjustments they ask for
// to a new container's OCI spec, and carries out the updates and evictions
// they request. With NRI disabled every hook is a no-op.
//
// The adaptation library bounds each plugin call by the request timeout
// and disconnects a plugin that misses it or whose connection breaks, so a
// hung or crashed plugin costs one timeout, not the daemon.
package nri

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/nri/pkg/adaptation"
	nrilog "github.com/containerd/nri/pkg/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/sandbox"
)

// runtimeName is how the daemon introduces itself to plugins.
const runtimeName = "criserver"

// Runtime is what the host needs of the daemon's container side.
type Runtime interface {
	// Snapshot lists the pods and containers that exist now.
	Snapshot() ([]*sandbox.Sandbox, []Container)
	// Container looks one container up.
	Container(id string) (Container, error)
	// UpdateResources sets a container's resources as
	// UpdateContainerResources does, without calling the plugins again.
	UpdateResources(ctx context.Context, id string, r *runtime.LinuxContainerResources) error
	// Evict stops a container a plugin wants gone.
	Evict(ctx context.Context, id, reason string) error
}

// Host owns the NRI adaptation of one daemon. A nil or disabled Host
// accepts every call and does nothing.
type Host struct {
	cfg     Config
	version string
	rt      Runtime
	nri     *adaptation.Adaptation

	mu sync.Mutex
	// stopped holds, per container, the one delivery of StopContainer:
	// the exit watcher, StopContainer and RemoveContainer may all report
	// the same exit, and RemoveContainer must follow it.
	stopped map[string]*sync.Once
}

// New returns a Host for cfg; Start connects it.
func New(cfg Config, version string) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Host{cfg: cfg, version: version, stopped: map[string]*sync.Once{}}, nil
}

// Start starts the plugins under the plugin path, synchronizes them with
// rt and opens the socket for external plugins. rt must already hold the
// pods and containers found at start-up.
func (h *Host) Start(rt Runtime) error {
	if h == nil || !h.cfg.Enable {
		return nil
	}
	nrilog.Set(klogLogger{})
	adaptation.SetPluginRegistrationTimeout(h.cfg.PluginRegistrationTimeout)
	adaptation.SetPluginRequestTimeout(h.cfg.PluginRequestTimeout)
	opts := []adaptation.Option{
		adaptation.WithPluginPath(h.cfg.PluginPath),
		adaptation.WithPluginConfigPath(h.cfg.PluginConfigPath),
		adaptation.WithSocketPath(h.cfg.SocketPath),
	}
	if h.cfg.DisableConnections {
		opts = append(opts, adaptation.WithDisabledExternalConnections())
	}
	h.rt = rt
	a, err := adaptation.New(runtimeName, h.version, h.synchronize, h.updateFromPlugin, opts...)
	if err != nil {
		return fmt.Errorf("set up NRI: %w", err)
	}
	if err := a.Start(); err != nil {
		return fmt.Errorf("start NRI: %w", err)
	}
	h.nri = a
	klog.InfoS("NRI enabled", "socket", h.cfg.SocketPath, "pluginPath", h.cfg.PluginPath)
	return nil
}

// Stop disconnects the plugins and closes the socket.
func (h *Host) Stop() {
	if h.active() {
		h.nri.Stop()
	}
}

func (h *Host) active() bool { return h != nil && h.nri != nil }

// BlockSync keeps a joining plugin from synchronizing until the returned
// func runs. Held across the making of a pod or container and its hook,
// it makes a plugin see each one either in its snapshot or through the
// hook, never in neither.
func (h *Host) BlockSync() func() {
	if !h.active() {
		return func() {}
	}
	return h.nri.BlockPluginSync().Unblock
}

// synchronize gives a joining plugin the current pods and containers and
// applies the updates it answers with.
func (h *Host) synchronize(ctx context.Context, cb adaptation.SyncCB) error {
	pods, ctrs := h.rt.Snapshot()
	podViews := make([]*adaptation.PodSandbox, 0, len(pods))
	for _, sb := range pods {
		podViews = append(podViews, podView(sb))
	}
	ctrViews := make([]*adaptation.Container, 0, len(ctrs))
	for _, c := range ctrs {
		ctrViews = append(ctrViews, containerView(c))
	}
	updates, err := cb(ctx, podViews, ctrViews)
	if err != nil {
		return err
	}
	h.applyUpdates(ctx, updates)
	return nil
}

// updateFromPlugin carries out updates a plugin asks for on its own and
// returns those that failed.
func (h *Host) updateFromPlugin(ctx context.Context, updates []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error) {
	return h.applyUpdates(ctx, updates), nil
}

// applyUpdates changes other containers' resources as plugins asked; it
// returns the updates that failed and were not marked ignorable.
func (h *Host) applyUpdates(ctx context.Context, updates []*adaptation.ContainerUpdate) []*adaptation.ContainerUpdate {
	var failed []*adaptation.ContainerUpdate
	for _, u := range updates {
		if err := h.applyUpdate(ctx, u); err != nil {
			klog.ErrorS(err, "NRI container update failed", "containerID", u.GetContainerId(), "ignored", u.GetIgnoreFailure())
			if !u.GetIgnoreFailure() {
				failed = append(failed, u)
			}
		}
	}
	return failed
}

func (h *Host) applyUpdate(ctx context.Context, u *adaptation.ContainerUpdate) error {
	c, err := h.rt.Container(u.GetContainerId())
	if err != nil {
		return err
	}
	r, err := criResources(c.Resources, u.GetLinux().GetResources())
	if err != nil {
		return err
	}
	return h.rt.UpdateResources(ctx, c.ID, r)
}

// evict stops the containers plugins want gone.
func (h *Host) evict(ctx context.Context, evictions []*adaptation.ContainerEviction) {
	for _, e := range evictions {
		klog.InfoS("NRI plugin evicts container", "containerID", e.GetContainerId(), "reason", e.GetReason())
		if err := h.rt.Evict(ctx, e.GetContainerId(), e.GetReason()); err != nil {
			klog.ErrorS(err, "NRI eviction failed", "containerID", e.GetContainerId())
		}
	}
}

// klogLogger sends the adaptation library's log lines to klog.
type klogLogger struct{}

func (klogLogger) Debugf(_ context.Context, format string, args ...any) {
	klog.V(4).InfoS("NRI: " + fmt.Sprintf(format, args...))
}

func (klogLogger) Infof(_ context.Context, format string, args ...any) {
	klog.InfoS("NRI: " + fmt.Sprintf(format, args...))
}

func (klogLogger) Warnf(_ context.Context, format string, args ...any) {
	klog.InfoS("NRI warning: " + fmt.Sprintf(format, args...))
}

func (klogLogger) Errorf(_ context.Context, format string, args ...any) {
	klog.ErrorS(nil, "NRI: "+fmt.Sprintf(format, args...))
}

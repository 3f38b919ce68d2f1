// Package cri serves the CRI RuntimeService and ImageService over gRPC: it
// validates requests, maps them onto the packages that do the work, maps
// their errors to gRPC codes, and keeps the in-memory index of pods and
// containers that answers List and Status calls.
package cri

import (
	"path/filepath"
	"sync"
	"sync/atomic"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/imagestore"
	"github.com/criserver/criserver/nri"
	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/podmetrics"
	"github.com/criserver/criserver/sandbox"
	"github.com/criserver/criserver/streaming"
)

// RuntimeName is reported by Version.
const RuntimeName = "criserver"

// NetworkStatus reports whether pod networking can be set up now.
type NetworkStatus interface {
	Ready() error
}

// Options wires the service to the packages that do the work.
type Options struct {
	Version      string
	CgroupDriver cgroups.Driver
	Network      NetworkStatus
	// Sandboxes runs the pod sandboxes and indexes them.
	Sandboxes *sandbox.Manager
	// Images holds the images and the containers' writable layers.
	Images *imagestore.Store
	// Runtime runs containers (runc/crun under conmon).
	Runtime *oci.Runtime
	// Root is the daemon's root directory; container records live in
	// <root>/containers.
	Root string
	// Streaming serves exec, attach and port-forward sessions.
	Streaming *streaming.Server
	// PodMetrics are the metric families ListPodSandboxMetrics serves;
	// the stats refresher collects what they need and nothing more.
	PodMetrics podmetrics.Families
	// NRI shows pods and containers to NRI plugins (nil: no plugins).
	NRI *nri.Host
}

// Service implements runtime.RuntimeServiceServer and
// runtime.ImageServiceServer. RPCs it does not implement yet answer
// codes.Unimplemented through the embedded generated types.
type Service struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer

	opts Options
	// podCIDR is the node's pod CIDR as the kubelet last sent it.
	podCIDR atomic.Pointer[string]

	// Containers (container*.go, stats.go, events.go).
	containers *containerStore
	events     *eventBus
	stats      *statsCache
	// layerFS and blockDevs name and size the filesystems of the disk
	// metric families (metrics_fs.go).
	layerFS   *layerFS
	blockDevs *blockDevices
	hostOnce  sync.Once
	hostInfo  *oci.HostInfo
}

// New returns a Service for opts.
func New(opts Options) *Service {
	s := &Service{
		opts: opts, events: newEventBus(), stats: newStatsCache(opts.PodMetrics),
		blockDevs: newBlockDevices("/sys/dev/block"),
	}
	var pods podIndex
	if opts.Sandboxes != nil {
		pods = opts.Sandboxes
	}
	s.containers = newContainerStore(filepath.Join(opts.Root, "containers"), s.events, pods)
	s.layerFS = &layerFS{dir: s.writableLayerDir()}
	return s
}

package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/podmetrics"
)

// layerFS is the filesystem the writable layers are on, as the disk metric
// family reports it: its device (looked up once) and its size, statfs'd by
// the stats refresher each round, or on demand when older than statsMaxAge.
type layerFS struct {
	dir string

	mu          sync.Mutex
	device      string
	deviceKnown bool
	at          time.Time
	stat        unix.Statfs_t
	err         error
}

// refresh statfs's the filesystem now.
func (l *layerFS) refresh() {
	var st unix.Statfs_t
	err := unix.Statfs(l.dir, &st)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.deviceKnown {
		l.device = mountSource(l.dir)
		l.deviceKnown = true
	}
	l.at, l.stat, l.err = time.Now(), st, err
	if err != nil {
		klog.V(4).InfoS("No size of the writable layers' filesystem", "dir", l.dir, "err", err)
	}
}

// usage is a container's share of the filesystem, with used bytes as the
// store last measured its writable layer; nil when the filesystem cannot
// be sized.
func (l *layerFS) usage(used uint64) *podmetrics.FsUsage {
	l.mu.Lock()
	stale := time.Since(l.at) >= statsMaxAge
	l.mu.Unlock()
	if stale {
		l.refresh()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil
	}
	return &podmetrics.FsUsage{
		Device:     l.device,
		UsageBytes: used,
		LimitBytes: l.stat.Blocks * uint64(l.stat.Bsize),
		Inodes:     l.stat.Files,
		InodesFree: l.stat.Ffree,
		Timestamp:  l.at,
	}
}

// mountSource is the source of the mount dir is on (e.g. /dev/vda1), as
// cAdvisor names a filesystem; "" when not found.
func mountSource(dir string) string {
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(dir))
	if err != nil {
		klog.V(4).InfoS("No mount table", "err", err)
		return ""
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if best == nil || len(m.Mountpoint) > len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil {
		return ""
	}
	return best.Source
}

// blockDevices names block devices by number, as cAdvisor labels disk I/O
// ("/dev/vda"). Each name is read from sysfs once, normally by the stats
// refresher, and kept.
type blockDevices struct {
	sysDir string // /sys/dev/block

	mu    sync.Mutex
	names map[[2]uint64]string
}

func newBlockDevices(sysDir string) *blockDevices {
	return &blockDevices{sysDir: sysDir, names: map[[2]uint64]string{}}
}

// learn looks up the devices of io not yet named, so that the metrics
// calls find them named.
func (b *blockDevices) learn(io []cgroups.DeviceIO) {
	for _, d := range io {
		b.name(d.Major, d.Minor)
	}
}

// name is a device's name, looked up the first time; "" when unknown.
func (b *blockDevices) name(major, minor uint64) string {
	k := [2]uint64{major, minor}
	b.mu.Lock()
	name, known := b.names[k]
	b.mu.Unlock()
	if known {
		return name
	}
	name = b.lookup(major, minor)
	b.mu.Lock()
	b.names[k] = name
	b.mu.Unlock()
	return name
}

// lookup reads DEVNAME from the device's uevent; "" when there is none.
func (b *blockDevices) lookup(major, minor uint64) string {
	data, err := os.ReadFile(filepath.Join(b.sysDir, fmt.Sprintf("%d:%d", major, minor), "uevent"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(line, "DEVNAME="); ok {
			return "/dev/" + name
		}
	}
	return ""
}

package imagestore

import (
	"time"
)

// usageTotals is the running sum of committed layer usage, updated at
// commit and removal so that ImageFsInfo never walks the layer store.
type usageTotals struct {
	layerBytes  int64
	layerInodes int64
}

func (u *usageTotals) addLayer(l layerUsage) {
	u.layerBytes += l.Bytes
	u.layerInodes += l.Inodes
}

func (u *usageTotals) removeLayer(l layerUsage) {
	u.layerBytes -= l.Bytes
	u.layerInodes -= l.Inodes
}

// FsUsage is one filesystem's usage as ImageFsInfo reports it.
type FsUsage struct {
	// Mountpoint is the directory the usage is for.
	Mountpoint string
	UsedBytes  uint64
	InodesUsed uint64
	Timestamp  time.Time
}

// ImageFsUsage is the usage of the image layers (overlay2 minus container
// writable layers), kept incrementally.
func (s *Store) ImageFsUsage() FsUsage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return FsUsage{
		Mountpoint: s.layerDir,
		UsedBytes:  uint64(max(s.usage.layerBytes, 0)),
		InodesUsed: uint64(max(s.usage.layerInodes, 0)),
		Timestamp:  time.Now(),
	}
}

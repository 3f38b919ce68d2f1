package imagestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// DiskUsage is what a store's files take on disk, counted as du -x counts
// (see duCounter): Total is what `du -sx -B1 <root>` prints, split into
// the layers, the containers' writable files and Other (records, overlay
// work directories, links, the temp directory of a pull in progress).
type DiskUsage struct {
	Images     []ImageDiskUsage     `json:"images"`
	Containers []ContainerDiskUsage `json:"containers"`
	Layers     []LayerDiskUsage     `json:"layers"`
	Other      Usage                `json:"other"`
	Total      Usage                `json:"total"`
}

// ImageDiskUsage is one image's layers: Shared are those another image
// uses too, Unique those only this one uses (removing it frees them unless
// a container still uses them).
type ImageDiskUsage struct {
	ID         string   `json:"id"`
	RepoTags   []string `json:"repoTags"`
	Size       int64    `json:"size"`
	Shared     int64    `json:"shared"`
	Unique     int64    `json:"unique"`
	Containers int      `json:"containers"`
}

// ContainerDiskUsage is one writable layer: the files under its upper
// directory, the figure the CRI reports as the writable layer's usage.
type ContainerDiskUsage struct {
	ID       string `json:"id"`
	ImageID  string `json:"imageID"`
	Writable Usage  `json:"writable"`
}

// LayerDiskUsage is one layer's directory (its files and its metadata).
type LayerDiskUsage struct {
	ChainID    digest.Digest `json:"chainID"`
	Usage      Usage         `json:"usage"`
	Images     []string      `json:"images"`
	Containers int           `json:"containers"`
}

// duWorkers walk layer directories in parallel: the walk waits on lstat
// and readdir, not on the CPU.
const duWorkers = 4

// DiskUsage walks the store's root once.
func (v *View) DiskUsage(ctx context.Context) (*DiskUsage, error) {
	var st unix.Stat_t
	if err := unix.Stat(v.root, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", v.root, err)
	}
	m := &duMeasure{view: v, du: newDuCounter(st.Dev), layers: map[digest.Digest]Usage{}, writable: map[string]Usage{}}
	if err := m.run(ctx); err != nil {
		return nil, err
	}
	return m.result(), nil
}

// duMeasure is one DiskUsage walk.
type duMeasure struct {
	view *View
	du   *duCounter

	mu       sync.Mutex
	layers   map[digest.Digest]Usage
	writable map[string]Usage
	other    Usage
}

func (m *duMeasure) addOther(u Usage) {
	m.mu.Lock()
	m.other.Bytes += u.Bytes
	m.other.Inodes += u.Inodes
	m.mu.Unlock()
}

// run measures overlay2's entries in parallel and the rest of the root
// (records, the overlay2 and root directories themselves) as Other.
func (m *duMeasure) run(ctx context.Context) error {
	layerDir := m.view.layerDir
	rest, err := m.du.walk(m.view.root, true, func(p string) bool { return p == layerDir })
	if err != nil {
		return err
	}
	m.addOther(rest)
	entries, err := os.ReadDir(layerDir)
	if err != nil {
		return err
	}
	jobs := make(chan string)
	errs := make([]error, duWorkers)
	var wg sync.WaitGroup
	for w := range duWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range jobs {
				if errs[w] == nil {
					errs[w] = m.entry(name)
				}
			}
		}()
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			break
		}
		jobs <- e.Name()
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// entry measures overlay2/<name>: a layer, a writable layer (its upper
// directory's files apart from the rest) or something else.
func (m *duMeasure) entry(name string) error {
	p := filepath.Join(m.view.layerDir, name)
	chainID := digest.NewDigestFromEncoded(digest.SHA256, name)
	if m.view.layers[chainID] {
		u, err := m.du.walk(p, true, nil)
		m.mu.Lock()
		m.layers[chainID] = u
		m.mu.Unlock()
		return err
	}
	if _, ok := m.view.rootfs[name]; ok {
		upper := filepath.Join(p, "diff")
		w, err := m.du.walk(upper, false, nil)
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.writable[name] = w
		m.mu.Unlock()
		rest, err := m.du.walk(p, true, func(q string) bool { return q == upper })
		m.addOther(rest)
		return err
	}
	u, err := m.du.walk(p, true, nil)
	m.addOther(u)
	return err
}

// result joins the measurements with the records.
func (m *duMeasure) result() *DiskUsage {
	v := m.view
	out := &DiskUsage{Other: m.other, Total: m.other}
	imagesOf := map[digest.Digest][]string{}
	for _, rec := range v.images {
		for _, l := range rec.Layers {
			imagesOf[l] = append(imagesOf[l], rec.ID)
		}
	}
	containersOf := map[digest.Digest]int{}
	containersOfImage := map[string]int{}
	for _, id := range v.ContainerIDs() {
		r := v.rootfs[id]
		for _, l := range r.Layers {
			containersOf[l]++
		}
		containersOfImage[r.ImageID]++
		w := m.writable[id]
		out.Containers = append(out.Containers, ContainerDiskUsage{ID: id, ImageID: r.ImageID, Writable: w})
		out.Total.Bytes += w.Bytes
		out.Total.Inodes += w.Inodes
	}
	for chainID, u := range m.layers {
		out.Layers = append(out.Layers, LayerDiskUsage{
			ChainID: chainID, Usage: u, Images: imagesOf[chainID], Containers: containersOf[chainID],
		})
		out.Total.Bytes += u.Bytes
		out.Total.Inodes += u.Inodes
	}
	slices.SortFunc(out.Layers, func(a, b LayerDiskUsage) int { return strings.Compare(string(a.ChainID), string(b.ChainID)) })
	for _, rec := range v.images {
		iu := ImageDiskUsage{ID: rec.ID, RepoTags: slices.Clone(rec.RepoTags), Containers: containersOfImage[rec.ID]}
		for _, l := range rec.Layers {
			b := m.layers[l].Bytes
			iu.Size += b
			if len(imagesOf[l]) > 1 {
				iu.Shared += b
			}
		}
		iu.Unique = iu.Size - iu.Shared
		out.Images = append(out.Images, iu)
	}
	return out
}

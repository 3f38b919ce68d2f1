package imagestore

// SummaryRow is one line of the df summary.
type SummaryRow struct {
	Type   string `json:"type"`
	Count  int    `json:"count"`
	Active int    `json:"active"`
	Size   int64  `json:"size"`
	Shared int64  `json:"shared"`
	Unique int64  `json:"unique"`
	// Reclaimable is what removing the inactive ones would free.
	Reclaimable int64 `json:"reclaimable"`
}

// Summary totals the usage by kind. Images: active when a container uses
// one; their size counts each layer once; shared are the layers two or
// more images use; reclaimable are the layers that only images no
// container uses have. Containers: active when running (as running says);
// reclaimable is the writable size of those that are not. Layers: every
// layer, including those only containers of a removed image keep; active
// when a container uses one; reclaimable as for images, plus layers
// nothing uses at all (the daemon removes those when it starts).
func (d *DiskUsage) Summary(running func(containerID string) bool) []SummaryRow {
	activeImage := map[string]bool{}
	for _, im := range d.Images {
		activeImage[im.ID] = im.Containers > 0
	}
	images := SummaryRow{Type: "Images", Count: len(d.Images)}
	for _, im := range d.Images {
		if im.Containers > 0 {
			images.Active++
		}
	}
	layers := SummaryRow{Type: "Layers", Count: len(d.Layers)}
	for _, l := range d.Layers {
		b := l.Usage.Bytes
		layers.Size += b
		if l.Containers > 0 {
			layers.Active++
		}
		if len(l.Images) > 1 {
			layers.Shared += b
		}
		if len(l.Images) > 0 {
			images.Size += b
			if len(l.Images) > 1 {
				images.Shared += b
			}
		}
		inUse := l.Containers > 0
		for _, id := range l.Images {
			inUse = inUse || activeImage[id]
		}
		if !inUse {
			layers.Reclaimable += b
			if len(l.Images) > 0 {
				images.Reclaimable += b
			}
		}
	}
	images.Unique = images.Size - images.Shared
	layers.Unique = layers.Size - layers.Shared
	containers := SummaryRow{Type: "Containers", Count: len(d.Containers)}
	for _, c := range d.Containers {
		containers.Size += c.Writable.Bytes
		if running(c.ID) {
			containers.Active++
		} else {
			containers.Reclaimable += c.Writable.Bytes
		}
	}
	containers.Unique = containers.Size
	return []SummaryRow{images, containers, layers}
}

package imagestore

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestDiskUsageSummary(t *testing.T) {
	l := func(name string, bytes int64, containers int, images ...string) LayerDiskUsage {
		return LayerDiskUsage{ChainID: digest.FromString(name), Usage: Usage{Bytes: bytes}, Images: images, Containers: containers}
	}
	du := &DiskUsage{
		Images: []ImageDiskUsage{{ID: "used", Containers: 1}, {ID: "unused"}},
		Layers: []LayerDiskUsage{
			l("base", 1000, 1, "used", "unused"), // shared, in use
			l("used-top", 100, 1, "used"),
			l("unused-top", 10, 0, "unused"), // reclaimable
			l("kept-by-container", 5, 1),     // its image was removed
			l("orphan", 1, 0),                // nothing uses it
		},
		Containers: []ContainerDiskUsage{
			{ID: "running", Writable: Usage{Bytes: 300}},
			{ID: "exited", Writable: Usage{Bytes: 20}},
		},
	}
	rows := du.Summary(func(id string) bool { return id == "running" })
	want := []SummaryRow{
		{Type: "Images", Count: 2, Active: 1, Size: 1110, Shared: 1000, Unique: 110, Reclaimable: 10},
		{Type: "Containers", Count: 2, Active: 1, Size: 320, Unique: 320, Reclaimable: 20},
		{Type: "Layers", Count: 5, Active: 3, Size: 1116, Shared: 1000, Unique: 116, Reclaimable: 11},
	}
	if len(rows) != len(want) {
		t.Fatalf("Summary = %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
}

package cri

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/atomicfile"
)

// storedRecord writes the record of a container id of pod p1 in state,
// flat (as the daemon writes it) or in the layout before that (legacy).
func storedRecord(t *testing.T, dir, id string, state runtime.ContainerState, legacy bool) {
	t.Helper()
	c := &containerRecord{
		ID: id, PodID: "p1", Image: containerImage{Ref: "busybox"},
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "web-" + id, Attempt: 2}},
	}
	f, err := c.toFile(containerStatus{State: state})
	if err != nil {
		t.Fatal(err)
	}
	path := atomicfile.RecordPath(dir, id)
	if legacy {
		path = filepath.Join(dir, id, legacyRecordName)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteJSON(path, f); err != nil {
		t.Fatal(err)
	}
}

func TestReadContainers(t *testing.T) {
	root := t.TempDir()
	if got, err := ReadContainers(root); err != nil || len(got) != 0 {
		t.Fatalf("ReadContainers of a root without containers = %v, %v", got, err)
	}
	dir := filepath.Join(root, "containers")
	storedRecord(t, dir, "c1", runtime.ContainerState_CONTAINER_RUNNING, false)
	storedRecord(t, dir, "c3", runtime.ContainerState_CONTAINER_EXITED, true)
	// Image volumes of a container whose record is gone (removed
	// meanwhile), and a temp file of a write in flight, are skipped.
	if err := os.MkdirAll(filepath.Join(dir, "c2", "volumes"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".c4.json.tmp-1"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(dir)
	got, err := ReadContainers(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []StoredContainer{
		{ID: "c1", PodID: "p1", Name: "web-c1", Attempt: 2, Image: "busybox", State: runtime.ContainerState_CONTAINER_RUNNING},
		{ID: "c3", PodID: "p1", Name: "web-c3", Attempt: 2, Image: "busybox", State: runtime.ContainerState_CONTAINER_EXITED},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ReadContainers = %+v, want %+v", got, want)
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Errorf("ReadContainers changed the record directory: %d entries, then %d", len(before), len(after))
	}
}

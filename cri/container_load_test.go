package cri

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// recordIDs readies the record directory for loading: flat records are
// kept, records of the older layout move to the flat one (their image
// volumes stay), and what no record names goes.
func TestRecordIDs(t *testing.T) {
	dir := t.TempDir()
	st := newContainerStore(dir, newEventBus(), nil)
	storedRecord(t, dir, "flat", runtime.ContainerState_CONTAINER_RUNNING, false)
	storedRecord(t, dir, "old", runtime.ContainerState_CONTAINER_EXITED, true)
	storedRecord(t, dir, "oldvol", runtime.ContainerState_CONTAINER_CREATED, true)
	storedRecord(t, dir, "flatvol", runtime.ContainerState_CONTAINER_CREATED, false)
	for _, d := range []string{"oldvol/volumes/0", "flatvol/volumes/0", "orphan/volumes/0"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, tmp := range []string{".flat.json.tmp-1", "old/.container.json.tmp-2"} {
		if err := os.WriteFile(filepath.Join(dir, tmp), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := st.recordIDs()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if want := []string{"flat", "flatvol", "old", "oldvol"}; !slices.Equal(ids, want) {
		t.Errorf("recordIDs = %v, want %v", ids, want)
	}
	for _, tt := range []struct {
		path   string
		exists bool
	}{
		{"flat.json", true},
		{"old.json", true},
		{"old", false},
		{"oldvol.json", true},
		{"oldvol/container.json", false},
		{"oldvol/volumes/0", true},
		{"flatvol/volumes/0", true},
		{"orphan", false},
		{".flat.json.tmp-1", false},
	} {
		_, err := os.Stat(filepath.Join(dir, tt.path))
		if exists := err == nil; exists != tt.exists || (err != nil && !errors.Is(err, os.ErrNotExist)) {
			t.Errorf("%s: exists %v (%v), want %v", tt.path, exists, err, tt.exists)
		}
	}
	if got := readState(t, st, "old"); got != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("moved record holds %v, want EXITED", got)
	}
	// A second start finds everything in place.
	again, err := st.recordIDs()
	slices.Sort(again)
	if err != nil || !slices.Equal(again, ids) {
		t.Errorf("recordIDs again = %v, %v; want %v", again, err, ids)
	}
}

// Deleting a container removes its record and its files directory.
func TestStoreDeleteRemovesFiles(t *testing.T) {
	st := newContainerStore(t.TempDir(), newEventBus(), nil)
	c := testRecord("abc", "pod", runtime.ContainerState_CONTAINER_EXITED, nil)
	st.index(c)
	if err := st.save(c); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(st.filesDir(c.ID), "volumes", "0"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := st.delete(c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{st.recordPath(c.ID), st.filesDir(c.ID)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after delete: %v", p, err)
		}
	}
}

package cri

import (
	"os"
	"path/filepath"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/atomicfile"
)

func TestReadContainers(t *testing.T) {
	root := t.TempDir()
	if got, err := ReadContainers(root); err != nil || len(got) != 0 {
		t.Fatalf("ReadContainers of a root without containers = %v, %v", got, err)
	}
	c := &containerRecord{
		ID: "c1", PodID: "p1", Image: containerImage{Ref: "busybox"},
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "web", Attempt: 2}},
	}
	f, err := c.toFile(containerStatus{State: runtime.ContainerState_CONTAINER_RUNNING})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "containers", "c1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteJSON(filepath.Join(root, "containers", "c1", "container.json"), f); err != nil {
		t.Fatal(err)
	}
	// A directory whose record is gone (removed meanwhile) is skipped.
	if err := os.MkdirAll(filepath.Join(root, "containers", "c2"), 0o700); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(filepath.Join(root, "containers", "c1"))
	got, err := ReadContainers(root)
	if err != nil {
		t.Fatal(err)
	}
	want := StoredContainer{ID: "c1", PodID: "p1", Name: "web", Attempt: 2, Image: "busybox", State: runtime.ContainerState_CONTAINER_RUNNING}
	if len(got) != 1 || got[0] != want {
		t.Errorf("ReadContainers = %+v, want [%+v]", got, want)
	}
	if after, _ := os.ReadDir(filepath.Join(root, "containers", "c1")); len(after) != len(before) {
		t.Errorf("ReadContainers changed the record directory: %d entries, then %d", len(before), len(after))
	}
}

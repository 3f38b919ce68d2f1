package cri

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// CreateContainer writes the record last, so a crash can leave a record
// directory holding only image volume directories: start-up removes it,
// and a directory with a record is not touched before the record is read.
func TestLoadContainerWithoutRecord(t *testing.T) {
	root := t.TempDir()
	s := New(Options{Root: root})
	orphan := filepath.Join(root, "containers", "orphan")
	if err := os.MkdirAll(filepath.Join(orphan, "volumes", "0"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.loadContainer(context.Background(), "orphan"); err != nil {
		t.Fatalf("loadContainer: %v", err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("a container directory without a record is left: %v", err)
	}
	if _, err := s.containers.get("orphan"); err == nil {
		t.Error("a container without a record was indexed")
	}

	// An unreadable record is reported and kept for a look.
	torn := filepath.Join(root, "containers", "torn")
	if err := os.MkdirAll(torn, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(torn, "container.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.loadContainer(context.Background(), "torn"); err == nil {
		t.Error("loadContainer of an unreadable record succeeded")
	}
	if _, err := os.Stat(torn); err != nil {
		t.Errorf("the directory of an unreadable record was removed: %v", err)
	}
}

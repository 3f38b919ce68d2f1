package cni

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReadyFollowsConfDirAndPlugins(t *testing.T) {
	dir, bin := t.TempDir(), t.TempDir()
	m, err := NewManager(Config{ConfDir: dir, BinDirs: []string{bin}, DefaultSubnet: "10.1.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Ready with no config = %v", err)
	}
	conf := `{"cniVersion":"1.0.0","name":"t","plugins":[{"type":"myplugin"}]}`
	if err := os.WriteFile(filepath.Join(dir, "10-t.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Ready with the plugin missing = %v", err)
	}
	if err := os.WriteFile(filepath.Join(bin, "myplugin"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready with config and plugin = %v", err)
	}
}

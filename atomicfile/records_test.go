package atomicfile

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// recordTree makes, under dir, the entries named: a path ending in "/" is
// a directory, any other a file holding its own name.
func recordTree(t *testing.T, dir string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(dir, p)
		if p[len(p)-1] == '/' {
			if err := os.MkdirAll(full, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

var recordLayout = []string{
	"flat.json",
	"old/rec.json",             // the older layout
	"oldvol/rec.json",          // the older layout, with files beside
	"oldvol/volumes/0/",        //
	"flatvol.json",             // flat, with files beside
	"flatvol/volumes/0/",       //
	"both.json",                // a crash after a move, before the rmdir
	"both/",                    //
	"orphan/volumes/0/",        // files of an object without a record
	".flat.json.tmp-1",         // writes a crash interrupted
	"old/.rec.json.tmp-2",      //
	"notes.txt",                // not a record
	"emptyold/.rec.json.tmp-3", // only a temp file: no record
}

func TestListRecords(t *testing.T) {
	dir := t.TempDir()
	recordTree(t, dir, recordLayout...)
	got, err := ListRecords(dir, "rec.json")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"flat": "flat.json", "old": "old/rec.json", "oldvol": "oldvol/rec.json",
		"flatvol": "flatvol.json", "both": "both.json",
	}
	for id, p := range want {
		want[id] = filepath.Join(dir, p)
	}
	if !maps.Equal(got, want) {
		t.Errorf("ListRecords = %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, ".flat.json.tmp-1")); err != nil {
		t.Errorf("ListRecords changed the directory: %v", err)
	}
	if _, err := ListRecords(filepath.Join(dir, "missing"), "rec.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ListRecords of a missing directory: %v, want not exist", err)
	}
}

func TestPrepareRecords(t *testing.T) {
	dir := t.TempDir()
	recordTree(t, dir, recordLayout...)
	ids, orphans, err := PrepareRecords(dir, "rec.json")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	slices.Sort(orphans)
	if want := []string{"both", "flat", "flatvol", "old", "oldvol"}; !slices.Equal(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
	if want := []string{"emptyold", "orphan"}; !slices.Equal(orphans, want) {
		t.Errorf("orphans = %v, want %v", orphans, want)
	}
	for _, tt := range []struct {
		path   string
		exists bool
	}{
		{"flat.json", true},
		{"old.json", true},
		{"old", false},
		{"oldvol.json", true},
		{"oldvol/rec.json", false},
		{"oldvol/volumes/0", true},
		{"flatvol/volumes/0", true},
		{"both", false},
		{"orphan/volumes/0", true}, // the caller's to remove
		{".flat.json.tmp-1", false},
		{"emptyold/.rec.json.tmp-3", false},
		{"notes.txt", true},
	} {
		_, err := os.Stat(filepath.Join(dir, tt.path))
		if exists := err == nil; exists != tt.exists || (err != nil && !errors.Is(err, os.ErrNotExist)) {
			t.Errorf("%s: exists %v (%v), want %v", tt.path, exists, err, tt.exists)
		}
	}
	if b, err := os.ReadFile(RecordPath(dir, "old")); err != nil || string(b) != "old/rec.json" {
		t.Errorf("moved record holds %q, %v", b, err)
	}
	// A second start finds everything in place.
	again, _, err := PrepareRecords(dir, "rec.json")
	slices.Sort(again)
	if err != nil || !slices.Equal(again, ids) {
		t.Errorf("PrepareRecords again = %v, %v; want %v", again, err, ids)
	}
}

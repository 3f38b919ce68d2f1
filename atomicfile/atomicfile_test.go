package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rec.json")
	for _, content := range []string{"first", "second"} {
		if err := WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Fatalf("got %q, want %q", got, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("want only the record in %s, got %d entries", dir, len(entries))
	}
}

func TestJSONRoundTripAndRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	in := map[string]int{"a": 1}
	if err := WriteJSON(p, in); err != nil {
		t.Fatal(err)
	}
	var out map[string]int
	if err := ReadJSON(p, &out); err != nil || out["a"] != 1 {
		t.Fatalf("round trip: %v %v", out, err)
	}
	stale := filepath.Join(dir, ".r.json.tmp-123")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTemps(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temp still present: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("record removed: %v", err)
	}
}

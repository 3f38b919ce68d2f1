package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadSteps(t *testing.T) {
	log := `I1204 20:37:56.000001   11150 run.go:142] "Pod sandbox step done" pod="aa11" step="cgroup" took="1.2ms"
I1204 20:37:56.000002   11150 run.go:142] "Pod sandbox step done" pod="aa11" step="network" took="48.5ms"
I1204 20:37:56.000003   11150 steps.go:28] "Container step done" call="CreateContainer" containerID="bb22" step="rootfs" took="1.377525ms"
I1204 20:37:56.000004   11150 steps.go:28] "Container step done" call="CreateContainer" containerID="bb22" step="conmon and runtime create" took="26.4ms"
I1204 20:37:56.000005   11150 steps.go:28] "Container step done" call="StartContainer" containerID="bb22" step="runtime start" took="900µs"
I1204 20:37:56.000006   11150 steps.go:28] "Container step done" call="RemoveContainer" containerID="bb22" step="runtime" took="6ms"
`
	path := filepath.Join(t.TempDir(), "criserver.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readSteps(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"aa11": 48500 * time.Microsecond, "bb22": 27300 * time.Microsecond}
	if len(got) != len(want) {
		t.Fatalf("readSteps = %v, want %v", got, want)
	}
	for id, d := range want {
		if got[id] != d {
			t.Errorf("%s: %v, want %v", id, got[id], d)
		}
	}
}

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
I1204 20:37:56.000007   11150 stop.go:57] "Pod sandbox step done" pod="aa11" step="network teardown" took="110ms"
I1204 20:37:56.000008   11150 other.go:1] "Something else" pod="aa11" took="1s"
`
	path := filepath.Join(t.TempDir(), "criserver.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readSteps(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]time.Duration{
		"aa11": {"cgroup": 1200 * time.Microsecond, stepCNIAdd: 48500 * time.Microsecond, stepCNIDel: 110 * time.Millisecond},
		"bb22": {"rootfs": 1377525 * time.Nanosecond, stepCreate: 26400 * time.Microsecond, stepStart: 900 * time.Microsecond, "runtime": 6 * time.Millisecond},
	}
	if len(got) != len(want) {
		t.Fatalf("readSteps = %v, want %v", got, want)
	}
	for id, steps := range want {
		if len(got[id]) != len(steps) {
			t.Errorf("%s: %v, want %v", id, got[id], steps)
		}
		for step, d := range steps {
			if got[id][step] != d {
				t.Errorf("%s %s: %v, want %v", id, step, got[id][step], d)
			}
		}
	}
}

package cri

import (
	"testing"
	"time"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/podmetrics"
)

func TestStatsCacheRateAndPruning(t *testing.T) {
	sc := newStatsCache(0)
	now := time.Now()
	sc.samples["a"] = &cgroupSample{cur: &cgroups.Stats{Timestamp: now.Add(-time.Second), CPUUsageNanos: 1000}}
	sc.samples["gone"] = &cgroupSample{cur: &cgroups.Stats{Timestamp: now}}
	got, err := sc.get("a", "/", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.hasRate || got.cur.CPUUsageNanos != 1000 {
		t.Errorf("a fresh sample was not served from the cache: %+v", got)
	}
	sc.keepOnly(map[string]bool{"a": true})
	if _, ok := sc.samples["gone"]; ok || len(sc.samples) != 1 {
		t.Errorf("keepOnly left %v", sc.samples)
	}
	sc.forget("a")
	if len(sc.samples) != 0 {
		t.Errorf("forget left %v", sc.samples)
	}
}

func TestStatsCacheMetricsFigures(t *testing.T) {
	sc := newStatsCache(podmetrics.All)
	if sc.metricsWanted() {
		t.Error("metrics wanted before any metrics call")
	}
	sc.metricsAsked()
	if !sc.metricsWanted() {
		t.Error("metrics not wanted right after a metrics call")
	}

	// A fresh sample taken for the stats calls serves them, but a metrics
	// call reads the cgroup again, with the families' figures.
	old := time.Now().Add(-time.Second)
	sc.samples["a"] = &cgroupSample{cur: &cgroups.Stats{Timestamp: old}}
	got, err := sc.get("a", "/", 0, false)
	if err != nil || !got.cur.Timestamp.Equal(old) {
		t.Errorf("stats call did not use the fresh sample: %v %v", got.cur, err)
	}
	got, err = sc.get("a", "/", 0, true)
	if err != nil {
		t.Skipf("the root cgroup cannot be read here: %v", err)
	}
	if !got.forMetrics || !got.cur.Timestamp.After(old) || got.cur.CPU == nil || got.cur.Memory == nil {
		t.Errorf("metrics call got %+v, want a new sample with the families' figures", got.cur)
	}
	// That sample now serves both.
	again, _ := sc.get("a", "/", 0, true)
	if !again.cur.Timestamp.Equal(got.cur.Timestamp) {
		t.Error("a fresh metrics sample was read again")
	}
}

package cri

import (
	"testing"
	"time"

	"github.com/criserver/criserver/cgroups"
)

func TestStatsCacheRateAndPruning(t *testing.T) {
	sc := newStatsCache(0)
	now := time.Now()
	sc.samples["a"] = &cgroupSample{cur: &cgroups.Stats{Timestamp: now.Add(-time.Second), CPUUsageNanos: 1000}}
	sc.samples["gone"] = &cgroupSample{cur: &cgroups.Stats{Timestamp: now}}
	got, err := sc.get("a", "/", 0)
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

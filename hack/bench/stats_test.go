package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestPercentile(t *testing.T) {
	tests := []struct {
		samples []float64
		p, want float64
	}{
		{[]float64{5}, 50, 5},
		{[]float64{5}, 99, 5},
		{[]float64{3, 1, 2}, 50, 2},
		{[]float64{4, 1, 3, 2}, 50, 2},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9},
	}
	for _, tt := range tests {
		if got := percentile(tt.samples, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.samples, tt.p, got, tt.want)
		}
	}
}

func TestResultsRatioAndNA(t *testing.T) {
	r := &results{}
	r.declare("a", unitMs)
	r.add("b", unitMs, rtContainerd, 1)
	r.add("a", unitMs, rtCriserver, 1)
	r.add("a", unitMs, rtCriserver, 3)
	r.add("a", unitMs, rtCriserver, 2)
	r.add("a", unitMs, rtContainerd, 4)
	unimpl := fmt.Errorf("CreateContainer: %w", status.Error(codes.Unimplemented, "not yet"))
	r.fail("b", unitMs, rtCriserver, unimpl)
	r.fail("c", unitMs, rtCriserver, errors.New("boom"))
	r.fail("d", unitMs, rtCriserver, naf("needs %s", "x"))

	figs := r.finish()
	if len(figs) != 4 {
		t.Fatalf("got %d figures, want 4", len(figs))
	}
	if figs[0].Ratio == nil || *figs[0].Ratio != 0.5 {
		t.Errorf("ratio of a = %v, want 0.5 (median 2 ÷ 4)", figs[0].Ratio)
	}
	b := figs[1].Runtimes[rtCriserver]
	if !strings.HasPrefix(b.NA, "Unimplemented: ") || !strings.Contains(b.NA, "not yet") || b.Median != nil || figs[1].Ratio != nil {
		t.Errorf("b = %+v ratio %v, want n/a for Unimplemented and no ratio", b, figs[1].Ratio)
	}
	if c := figs[2].Runtimes[rtCriserver]; c.Errors != 1 || c.FirstError != "boom" || c.NA != "" {
		t.Errorf("c = %+v, want one error", c)
	}
	if d := figs[3].Runtimes[rtCriserver]; d.NA != "needs x" {
		t.Errorf("d = %+v, want n/a with reason", d)
	}
}

func TestTargetCell(t *testing.T) {
	r := &results{}
	r.add(figWholePod, unitMs, rtCriserver, 30)
	r.add(figWholePod, unitMs, rtContainerd, 100)
	r.add(figCreateStart, unitMs, rtCriserver, 90)
	r.add(figCreateStart, unitMs, rtContainerd, 100)
	r.add("ListContainers @ 500 containers", unitMs, rtCriserver, 7)
	r.add(figListFloor+" @ 500 containers", unitMs, rtCriserver, 6)
	r.add(figWholeOverFloor, unitTimes, rtCriserver, 1.4)
	r.add(figExec, unitMs, rtCriserver, 1)
	figs := r.finish()
	want := []string{"ratio ≤ 0.35: met", "ratio ≤ 0.35: missed", "criserver p99 ≤ 1.2 × its floor's: met", "",
		"criserver ≤ 1.3: missed", "ratio ≤ 0.4 (no figure)"}
	for i, f := range figs {
		if got := targetCell(f, figs); got != want[i] {
			t.Errorf("targetCell(%s) = %q, want %q", f.Name, got, want[i])
		}
	}
}

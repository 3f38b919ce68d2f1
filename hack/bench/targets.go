package main

import (
	"fmt"
	"strings"
)

// target is one of the project's goals (issue 16), checked against a run.
// met may look at the run's other figures (a floor measured alongside).
type target struct {
	matches func(name string) bool
	text    string
	met     func(f *figure, all []*figure) (ok, known bool)
}

// ratioAtMost is met when criserver's median ÷ containerd's is ≤ limit.
func ratioAtMost(limit float64) func(*figure, []*figure) (bool, bool) {
	return func(f *figure, _ []*figure) (bool, bool) {
		if f.Ratio == nil {
			return false, false
		}
		return *f.Ratio <= limit, true
	}
}

// criserverP99Below is met when criserver's p99 is < limit (the figure's unit).
func criserverP99Below(limit float64) func(*figure, []*figure) (bool, bool) {
	return func(f *figure, _ []*figure) (bool, bool) {
		s := f.Runtimes[rtCriserver]
		if s == nil || s.P99 == nil {
			return false, false
		}
		return *s.P99 < limit, true
	}
}

// criserverMedianAtMost is met when criserver's median is ≤ limit.
func criserverMedianAtMost(limit float64) func(*figure, []*figure) (bool, bool) {
	return func(f *figure, _ []*figure) (bool, bool) {
		s := f.Runtimes[rtCriserver]
		if s == nil || s.Median == nil {
			return false, false
		}
		return *s.Median <= limit, true
	}
}

// p99WithinFloor is met when criserver's p99 is within factor × the p99 of
// the floor figure measured at the same level (floor names it).
func p99WithinFloor(factor float64, floor func(name string) string) func(*figure, []*figure) (bool, bool) {
	return func(f *figure, all []*figure) (bool, bool) {
		s := f.Runtimes[rtCriserver]
		var fl *series
		for _, g := range all {
			if g.Name == floor(f.Name) {
				fl = g.Runtimes[rtCriserver]
			}
		}
		if s == nil || s.P99 == nil || fl == nil || fl.P99 == nil {
			return false, false
		}
		return *s.P99 <= factor**fl.P99, true
	}
}

func named(n string) func(string) bool { return func(s string) bool { return s == n } }

func prefixed(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

func suffixed(p string) func(string) bool {
	return func(s string) bool { return strings.HasSuffix(s, p) }
}

var targets = []target{
	{named(figWholePod), "ratio ≤ 0.35", ratioAtMost(0.35)},
	{named(figCreateStart), "ratio ≤ 0.35", ratioAtMost(0.35)},
	{named(figExec), "ratio ≤ 0.4", ratioAtMost(0.4)},
	{named(figStopRemoveCtr), "ratio ≤ 0.4", ratioAtMost(0.4)},
	{named(figStopRemovePod), "ratio ≤ 0.4", ratioAtMost(0.4)},
	{named("part: RemoveContainer"), "ratio ≤ 1.0", ratioAtMost(1.0)},
	{prefixed("cold pull"), "ratio ≤ 0.5", ratioAtMost(0.5)},
	{suffixed("pods started in parallel: wall time"), "ratio ≤ 0.4", ratioAtMost(0.4)},
	{named(figWholeOverFloor), "criserver ≤ 1.3", criserverMedianAtMost(1.3)},
	{func(s string) bool {
		return strings.HasPrefix(s, "helper processes per pod, PSS") && strings.HasSuffix(s, "× 1 container")
	}, "ratio ≤ 0.25", ratioAtMost(0.25)},
	{named(figListUndecoded + " @ 500 containers"), "criserver p99 < 3 ms", criserverP99Below(3)},
	{named("ListContainers @ 500 containers"), "criserver p99 ≤ 1.2 × its floor's", p99WithinFloor(1.2, func(string) string {
		return figListFloor + " @ 500 containers"
	})},
	{func(s string) bool {
		return strings.HasPrefix(s, "density") && strings.HasSuffix(s, ": time until all run")
	}, "ratio ≤ 0.5", ratioAtMost(0.5)},
	{func(s string) bool { return strings.HasPrefix(s, "density") && strings.HasSuffix(s, ": daemon CPU") }, "ratio ≤ 0.5", ratioAtMost(0.5)},
}

// targetCell says the figure's target and whether this run met it.
func targetCell(f *figure, all []*figure) string {
	for _, t := range targets {
		if !t.matches(f.Name) {
			continue
		}
		ok, known := t.met(f, all)
		switch {
		case !known:
			return t.text + " (no figure)"
		case ok:
			return t.text + ": met"
		default:
			return fmt.Sprintf("%s: missed", t.text)
		}
	}
	return ""
}

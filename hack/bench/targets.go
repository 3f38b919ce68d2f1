package main

import (
	"fmt"
	"strings"
)

// target is one of the project's goals (issue 7), checked against a run.
type target struct {
	matches func(name string) bool
	text    string
	met     func(f *figure) (ok, known bool)
}

// ratioAtMost is met when criserver's median ÷ containerd's is ≤ limit.
func ratioAtMost(limit float64) func(*figure) (bool, bool) {
	return func(f *figure) (bool, bool) {
		if f.Ratio == nil {
			return false, false
		}
		return *f.Ratio <= limit, true
	}
}

func named(n string) func(string) bool { return func(s string) bool { return s == n } }

func prefixed(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

var targets = []target{
	{named(figWholePod), "ratio ≤ 0.5", ratioAtMost(0.5)},
	{named(figCreateStart), "ratio ≤ 0.7", ratioAtMost(0.7)},
	{named(figStopRemoveCtr), "ratio ≤ 0.7", ratioAtMost(0.7)},
	{named(figStopRemovePod), "ratio ≤ 0.7", ratioAtMost(0.7)},
	{prefixed("cold pull"), "ratio ≤ 0.7", ratioAtMost(0.7)},
	{func(s string) bool {
		return strings.HasPrefix(s, "helper processes per pod, PSS") && strings.HasSuffix(s, "× 1 container")
	}, "ratio ≤ 0.25", ratioAtMost(0.25)},
	{named("ListContainers @ 500 containers"), "criserver p99 < 5 ms", func(f *figure) (bool, bool) {
		s := f.Runtimes[rtCriserver]
		if s == nil || s.P99 == nil {
			return false, false
		}
		return *s.P99 < 5, true
	}},
}

// targetCell says the figure's target and whether this run met it.
func targetCell(f *figure) string {
	for _, t := range targets {
		if !t.matches(f.Name) {
			continue
		}
		ok, known := t.met(f)
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

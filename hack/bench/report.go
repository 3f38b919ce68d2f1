package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// report is what a run writes to results.json.
type report struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Command  string            `json:"command"`
	Machine  map[string]string `json:"machine"`
	Versions map[string]string `json:"versions"`
	Settings map[string]any    `json:"settings"`
	Figures  []*figure         `json:"figures"`
	Notes    []string          `json:"notes,omitempty"`
}

func writeReport(dir string, rep *report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), data, 0o644); err != nil {
		return fmt.Errorf("write results.json: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "results.md"))
	if err != nil {
		return err
	}
	defer f.Close()
	writeTable(f, rep)
	return f.Close()
}

// writeTable prints the figures as a Markdown table with the ratio.
func writeTable(w io.Writer, rep *report) {
	fmt.Fprintf(w, "Command: `%s`\n\n", rep.Command)
	fmt.Fprintf(w, "Machine: %s\n\n", machineLine(rep.Machine))
	fmt.Fprintf(w, "Versions: %s\n\n", joinMap(rep.Versions))
	fmt.Fprintf(w, "| figure | unit | criserver median | criserver p99 | containerd median | containerd p99 | criserver ÷ containerd | target |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|---|\n")
	for _, f := range rep.Figures {
		cm, cp := cells(f.Runtimes[rtCriserver])
		dm, dp := cells(f.Runtimes[rtContainerd])
		ratio := "n/a"
		if f.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *f.Ratio)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f.Name, f.Unit, cm, cp, dm, dp, ratio, targetCell(f, rep.Figures))
	}
	var notes []string
	for _, f := range rep.Figures {
		for _, rt := range []string{rtCriserver, rtContainerd} {
			s := f.Runtimes[rt]
			switch {
			case s == nil:
			case s.NA != "":
				notes = append(notes, fmt.Sprintf("- %s, %s: n/a — %s", f.Name, rt, oneLine(s.NA)))
			case s.Errors > 0:
				notes = append(notes, fmt.Sprintf("- %s, %s: %d failed attempt(s), first: %s", f.Name, rt, s.Errors, oneLine(s.FirstError)))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nNot measured or failed:\n\n%s\n", strings.Join(notes, "\n"))
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintf(w, "\nSet-up problems:\n\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(w, "- %s\n", oneLine(n))
		}
	}
}

func cells(s *series) (median, p99 string) {
	switch {
	case s == nil:
		return "n/a", "n/a"
	case s.Median != nil:
		return format(*s.Median), format(*s.P99)
	case s.NA != "":
		return "n/a", "n/a"
	case s.Errors > 0:
		return "error", "error"
	}
	return "—", "—"
}

func format(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func joinMap(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+" "+m[k])
	}
	return strings.Join(parts, ", ")
}

func machineLine(m map[string]string) string {
	return fmt.Sprintf("%s, %s CPUs, %s RAM, Linux %s, %s; load average (1, 5, 15 min) %s at start, %s at end",
		m["cpu"], m["cpus"], m["memory"], m["kernel"], m["os"], m["loadavg_start"], m["loadavg_end"])
}

// loadAvg is the first three fields of /proc/loadavg: a busy machine
// inflates every figure, and the reader should know.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// describeMachine reads what the table's reader needs to compare runs.
func describeMachine() map[string]string {
	m := map[string]string{"cpus": fmt.Sprint(runtime.NumCPU())}
	if v := firstMatch("/proc/cpuinfo", "model name"); v != "" {
		m["cpu"] = v
	}
	if v := firstMatch("/proc/meminfo", "MemTotal"); v != "" {
		var kb int64
		if _, err := fmt.Sscanf(v, "%d", &kb); err == nil {
			m["memory"] = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	m["loadavg_start"] = loadAvg()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if v := firstMatch("/etc/os-release", "PRETTY_NAME"); v != "" {
		m["os"] = strings.Trim(v, `"`)
	}
	return m
}

// firstMatch returns the value of the first "key: value" or key=value line.
func firstMatch(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(line, key))
		rest = strings.TrimSpace(strings.TrimLeft(rest, ":="))
		return rest
	}
	return ""
}

// toolVersions records the versions of the programs both runtimes use.
func toolVersions() map[string]string {
	v := map[string]string{}
	for name, argv := range map[string][]string{
		"runc":       {"runc", "--version"},
		"conmon":     {"conmon", "--version"},
		"containerd": {"containerd", "--version"},
	} {
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		v[name] = line
	}
	return v
}

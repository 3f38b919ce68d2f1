package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/klog/v2"
)

// profiler samples one daemon's process tree (the daemon and the children it
// forks: conmon, runc, CNI plugins) with perf while a phase runs, so that a
// missed target can be traced to the part of the path that costs.
type profiler struct {
	name, data, out string
	proc            *process
}

func startProfiler(dir, phase string, d *daemon) (*profiler, error) {
	pid, err := d.pid()
	if err != nil {
		return nil, err
	}
	p := &profiler{
		name: d.name,
		data: filepath.Join(dir, fmt.Sprintf("%s-%s.perf.data", d.name, phase)),
		out:  filepath.Join(dir, fmt.Sprintf("%s-%s.profile.txt", d.name, phase)),
	}
	p.proc, err = startProcess("perf-"+d.name, p.data+".log",
		"perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", p.data)
	if err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // let perf attach before the phase starts
	return p, nil
}

// finish stops sampling and writes two summaries: time by process and
// binary, then by function.
func (p *profiler) finish() {
	p.proc.Stop(30 * time.Second)
	f, err := os.Create(p.out)
	if err != nil {
		klog.ErrorS(err, "Profile summary", "runtime", p.name)
		return
	}
	defer f.Close()
	for _, sort := range []string{"comm,dso", "comm,dso,sym"} {
		fmt.Fprintf(f, "==== perf report --sort %s ====\n", sort)
		cmd := exec.Command("perf", "report", "-i", p.data, "--stdio", "--no-children",
			"--sort", sort, "--percent-limit", "0.5", "-g", "none")
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(f, "perf report: %v\n", err)
		}
	}
	klog.InfoS("Profile written", "runtime", p.name, "summary", p.out)
}

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

const unitS = "s"

// density starts opts.densityPods pods of opts.densityContainers containers
// each on one daemon at a time, opts.densityBatch pods at once (as a node
// filling up at the kubelet's default of 110 pods): the time until all
// run, the daemon's CPU time over it, its RSS and the helpers' memory per
// pod at the end.
func (w *workload) density(ctx context.Context) {
	label := fmt.Sprintf("density, %d pods × %d containers started %d at a time", w.opts.densityPods, w.opts.densityContainers, w.opts.densityBatch)
	figTime := label + ": time until all run"
	figCPU := label + ": daemon CPU"
	figRSS := label + ": daemon RSS"
	for _, f := range []struct{ name, unit string }{{figTime, unitS}, {figCPU, unitS}, {figRSS, unitMiB}} {
		w.res.declare(f.name, f.unit)
	}
	for _, d := range w.ordered(0) {
		if ctx.Err() != nil {
			return
		}
		st := &scaleState{}
		cpu0, err := daemonCPU(d)
		start := time.Now()
		if err == nil {
			st.broken = w.fillNode(ctx, d, st)
		} else {
			st.broken = err
		}
		took := time.Since(start)
		cpu1, err := daemonCPU(d)
		if st.broken == nil && err != nil {
			st.broken = err
		}
		if st.broken != nil {
			for _, f := range []struct{ name, unit string }{{figTime, unitS}, {figCPU, unitS}, {figRSS, unitMiB}} {
				w.res.fail(f.name, f.unit, d.name, st.broken)
			}
		} else {
			w.res.add(figTime, unitS, d.name, took.Seconds())
			w.res.add(figCPU, unitS, d.name, (cpu1 - cpu0).Seconds())
			if v, err := daemonRSS(d); err != nil {
				w.res.fail(figRSS, unitMiB, d.name, err)
			} else {
				w.res.add(figRSS, unitMiB, d.name, v)
			}
		}
		w.measureHelpers(ctx, map[string]*scaleState{d.name: st}, label, w.opts.densityPods)
		var ids []string
		for _, p := range st.pods {
			ids = append(ids, p.id)
		}
		if err := removePods(context.WithoutCancel(ctx), d, ids, w.opts.densityBatch); err != nil {
			klog.ErrorS(err, "Tearing down density pods", "runtime", d.name)
		}
	}
}

// fillNode starts the density pods on d, densityBatch at a time, and
// returns the first failure.
func (w *workload) fillNode(ctx context.Context, d *daemon, st *scaleState) error {
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, max(w.opts.densityBatch, 1))
	var wg sync.WaitGroup
	for range w.opts.densityPods {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sp, err := w.densityPod(ctx, d)
			mu.Lock()
			defer mu.Unlock()
			if sp != nil {
				st.pods = append(st.pods, sp)
			}
			if err != nil && first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	return first
}

// densityPod runs one pod and starts its containers one after another, as
// the kubelet does within a pod.
func (w *workload) densityPod(ctx context.Context, d *daemon) (*scalePod, error) {
	pod, err := w.podConfig(d, "density")
	if err != nil {
		return nil, err
	}
	id, err := d.rt.RunPodSandbox(ctx, pod, "")
	if err != nil {
		d.noteErr(err)
		return nil, fmt.Errorf("RunPodSandbox: %w", err)
	}
	sp := &scalePod{id: id, config: pod}
	for i := range w.opts.densityContainers {
		ctrID, err := w.startContainer(ctx, d, id, pod, fmt.Sprintf("c%d", i))
		if ctrID != "" {
			sp.ctrs = append(sp.ctrs, ctrID)
		}
		if err != nil {
			return sp, err
		}
	}
	return sp, nil
}

// daemonCPU is the CPU time (user and system) the daemon process has used.
func daemonCPU(d *daemon) (time.Duration, error) {
	pid, err := d.pid()
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("%s CPU time: %w", d.name, err)
	}
	// utime and stime are fields 14 and 15; the command name before them
	// is in parentheses and may hold spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("%s CPU time: short /proc/%d/stat", d.name, pid)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s CPU time: %w", d.name, err)
		}
		ticks += n
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

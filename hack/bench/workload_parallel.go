package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// startedPod is a pod with one container that the workload started.
type startedPod struct {
	id, ctrID string
	took      time.Duration
	err       error
}

// startPod runs a pod and one container in it.
func (w *workload) startPod(ctx context.Context, d *daemon, tag string) startedPod {
	var p startedPod
	pod, err := w.podConfig(d, tag)
	if err != nil {
		p.err = err
		return p
	}
	t := time.Now()
	p.id, err = d.rt.RunPodSandbox(ctx, pod, "")
	if err != nil {
		p.err = fmt.Errorf("RunPodSandbox: %w", err)
		d.noteErr(err)
		return p
	}
	p.ctrID, p.err = w.startContainer(ctx, d, p.id, pod, "c")
	p.took = time.Since(t)
	d.noteErr(p.err)
	return p
}

// removePods stops and removes pods, n at a time.
func removePods(ctx context.Context, d *daemon, ids []string, n int) error {
	sem := make(chan struct{}, max(n, 1))
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for _, id := range ids {
		if id == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := removePod(ctx, d, id); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("remove pod %s: %w", id, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// parallel starts opts.parallel whole pods at once on each daemon in turn:
// the wall time until all run, and each pod's own start latency.
func (w *workload) parallel(ctx context.Context) {
	n := w.opts.parallel
	figWall := fmt.Sprintf("%d pods started in parallel: wall time", n)
	figEach := fmt.Sprintf("%d pods started in parallel: per-pod start", n)
	for round := range w.opts.parallelRounds {
		for _, d := range w.ordered(round) {
			if ctx.Err() != nil {
				return
			}
			pods := make([]startedPod, n)
			var wg sync.WaitGroup
			t := time.Now()
			for i := range pods {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pods[i] = w.startPod(ctx, d, "par")
				}()
			}
			wg.Wait()
			wall := time.Since(t)
			var firstErr error
			ids := make([]string, 0, n)
			for _, p := range pods {
				ids = append(ids, p.id)
				if p.err != nil {
					if firstErr == nil {
						firstErr = p.err
					}
					continue
				}
				w.res.add(figEach, unitMs, d.name, ms(p.took))
			}
			if firstErr != nil {
				w.res.fail(figWall, unitMs, d.name, firstErr)
				w.res.fail(figEach, unitMs, d.name, firstErr)
			} else {
				w.res.add(figWall, unitMs, d.name, ms(wall))
			}
			if err := removePods(ctx, d, ids, n); err != nil {
				klog.ErrorS(err, "Tearing down parallel pods", "runtime", d.name)
			}
		}
	}
}

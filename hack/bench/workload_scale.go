package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// scaleState is what one daemon runs during the scale phase.
type scaleState struct {
	pods   []*scalePod
	broken error // set when the daemon could not reach the scale
}

type scalePod struct {
	id     string
	config *runtime.PodSandboxConfig
	ctrs   []string
}

// scale brings each daemon to opts.scalePods pods with one container, then
// measures memory and the List/Status calls; then adds containers up to
// opts.containersPerPod per pod and measures the calls again. Both daemons
// are at the same scale at the same time and are called alternately.
func (w *workload) scale(ctx context.Context) {
	states := map[string]*scaleState{}
	for _, d := range w.daemons {
		states[d.name] = &scaleState{}
		if d.hung() {
			states[d.name].broken = fmt.Errorf("skipped: %s timed out repeatedly earlier", d.name)
		}
	}
	defer w.scaleDown(ctx, states)

	// Level 1: one container per pod, pods started alternately.
	for i := range w.opts.scalePods {
		for _, d := range w.ordered(i) {
			st := states[d.name]
			if st.broken != nil || ctx.Err() != nil {
				continue
			}
			pod, err := w.podConfig(d, "scale")
			if err != nil {
				st.broken = err
				continue
			}
			id, err := d.rt.RunPodSandbox(ctx, pod, "")
			if err != nil {
				d.noteErr(err)
				st.broken = fmt.Errorf("RunPodSandbox: %w", err)
				continue
			}
			sp := &scalePod{id: id, config: pod}
			st.pods = append(st.pods, sp)
			ctrID, err := w.startContainer(ctx, d, id, pod, "c0")
			if ctrID != "" {
				sp.ctrs = append(sp.ctrs, ctrID)
			}
			if err != nil {
				st.broken = err
			}
		}
	}
	level1 := w.opts.scalePods
	w.measureMemory(ctx, states, level1)
	w.measureLists(ctx, states, level1)

	// Level 2: more containers in the same pods.
	if w.opts.containersPerPod <= 1 {
		return
	}
	for i := 1; i < w.opts.containersPerPod; i++ {
		for p := range w.opts.scalePods {
			for _, d := range w.ordered(p) {
				st := states[d.name]
				if st.broken != nil || ctx.Err() != nil || p >= len(st.pods) {
					continue
				}
				sp := st.pods[p]
				ctrID, err := w.startContainer(ctx, d, sp.id, sp.config, fmt.Sprintf("c%d", i))
				if ctrID != "" {
					sp.ctrs = append(sp.ctrs, ctrID)
				}
				if err != nil {
					st.broken = err
				}
			}
		}
	}
	level2 := w.opts.scalePods * w.opts.containersPerPod
	w.measureHelpers(ctx, states, fmt.Sprintf("with %d pods × %d containers", w.opts.scalePods, w.opts.containersPerPod), w.opts.scalePods)
	w.measureLists(ctx, states, level2)
}

func (w *workload) scaleDown(ctx context.Context, states map[string]*scaleState) {
	for _, d := range w.daemons {
		var ids []string
		for _, p := range states[d.name].pods {
			ids = append(ids, p.id)
		}
		if err := removePods(context.WithoutCancel(ctx), d, ids, 4); err != nil {
			klog.ErrorS(err, "Tearing down scale pods", "runtime", d.name)
		}
	}
}

// brokenReason is why a daemon's scale figures are n/a, or "".
func brokenReason(st *scaleState) string {
	if st.broken == nil {
		return ""
	}
	if isUnimplemented(st.broken) {
		return "needs running containers at scale: Unimplemented: " + errMessage(st.broken)
	}
	return fmt.Sprintf("needs running containers at scale, which failed: %v", st.broken)
}

// measureMemory records daemon RSS and helper memory at level 1.
func (w *workload) measureMemory(ctx context.Context, states map[string]*scaleState, pods int) {
	figRSS := fmt.Sprintf("daemon RSS with %d pods (1 container each)", pods)
	for _, d := range w.daemons {
		if why := brokenReason(states[d.name]); why != "" {
			w.res.na(figRSS, unitMiB, d.name, why)
			continue
		}
		for range 3 {
			if v, err := daemonRSS(d); err != nil {
				w.res.fail(figRSS, unitMiB, d.name, err)
			} else {
				w.res.add(figRSS, unitMiB, d.name, v)
			}
			time.Sleep(time.Second)
		}
	}
	w.measureHelpers(ctx, states, fmt.Sprintf("with %d pods × 1 container", pods), pods)
}

// daemonRSS is the daemon's resident set in MiB.
func daemonRSS(d *daemon) (float64, error) {
	pid, err := d.pid()
	if err != nil {
		return 0, err
	}
	m, err := memoryOf([]int{pid})
	if err != nil {
		return 0, fmt.Errorf("%s memory: %w", d.name, err)
	}
	return float64(m.rssKiB) / 1024, nil
}

// measureHelpers records the memory of the per-pod helper processes of the
// daemons in states.
func (w *workload) measureHelpers(ctx context.Context, states map[string]*scaleState, label string, pods int) {
	figPSS := "helper processes per pod, PSS, " + label
	figRSS := "helper processes per pod, RSS, " + label
	figN := "helper processes per pod, count, " + label
	unitN := "processes"
	figs := []struct{ name, unit string }{{figPSS, unitMiB}, {figRSS, unitMiB}, {figN, unitN}}
	for _, f := range figs {
		w.res.declare(f.name, f.unit)
	}
	for _, d := range w.daemons {
		st, ok := states[d.name]
		if !ok {
			continue // not measured this time
		}
		if why := brokenReason(st); why != "" {
			for _, f := range figs {
				w.res.na(f.name, f.unit, d.name, why)
			}
			continue
		}
		pids, err := w.helperPIDs(ctx, d)
		if err == nil && len(pids) == 0 {
			err = fmt.Errorf("found no helper process")
		}
		var m memory
		if err == nil {
			m, err = memoryOf(pids)
		}
		if err != nil {
			for _, f := range figs {
				w.res.fail(f.name, f.unit, d.name, err)
			}
			continue
		}
		w.res.add(figPSS, unitMiB, d.name, float64(m.pssKiB)/1024/float64(pods))
		w.res.add(figRSS, unitMiB, d.name, float64(m.rssKiB)/1024/float64(pods))
		w.res.add(figN, unitN, d.name, float64(len(pids))/float64(pods))
	}
}

// helperPIDs finds d's helpers through the pods and containers it lists.
func (w *workload) helperPIDs(ctx context.Context, d *daemon) ([]int, error) {
	pods, err := d.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ListPodSandbox: %w", err)
	}
	ctrs, err := d.rt.ListContainers(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ListContainers: %w", err)
	}
	podIDs, ctrIDs := map[string]bool{}, map[string]bool{}
	for _, p := range pods {
		podIDs[p.Id] = true
	}
	for _, c := range ctrs {
		ctrIDs[c.Id] = true
	}
	pid, err := d.pid()
	if err != nil {
		return nil, err
	}
	return helperProcs(listProcs(), podIDs, ctrIDs, pid), nil
}

// listWarmup is how many unrecorded calls of each kind precede the timed ones.
const listWarmup = 5

// figListUndecoded is ListContainers timed to the last byte of the reply,
// without decoding it: the runtime's share of the call. Decoding a reply
// of a few hundred KB is the client's own work and the same for any runtime.
const figListUndecoded = "ListContainers (reply not decoded)"

// measureLists times the calls the kubelet makes over and over, at the
// current number of running containers.
func (w *workload) measureLists(ctx context.Context, states map[string]*scaleState, level int) {
	suffix := fmt.Sprintf(" @ %d containers", level)
	calls := []struct {
		name string
		call func(context.Context, *daemon, *scaleState) error
	}{
		{"ListContainers", func(ctx context.Context, d *daemon, _ *scaleState) error {
			_, err := d.rt.ListContainers(ctx, nil)
			return err
		}},
		{figListUndecoded, func(ctx context.Context, d *daemon, _ *scaleState) error {
			_, err := d.listContainersUndecoded(ctx, w.opts.callTimeout)
			return err
		}},
		{"ListPodSandbox", func(ctx context.Context, d *daemon, _ *scaleState) error {
			_, err := d.rt.ListPodSandbox(ctx, nil)
			return err
		}},
		{"ContainerStatus", func(ctx context.Context, d *daemon, st *scaleState) error {
			p := st.pods[rand.IntN(len(st.pods))]
			_, err := d.rt.ContainerStatus(ctx, p.ctrs[rand.IntN(len(p.ctrs))], false)
			return err
		}},
		{"ListContainerStats", func(ctx context.Context, d *daemon, _ *scaleState) error {
			_, err := d.rt.ListContainerStats(ctx, nil)
			return err
		}},
	}
	for _, c := range calls {
		fig := c.name + suffix
		// The first calls after the scale-up fill caches and grow the
		// connection's flow-control window; the kubelet's steady relisting
		// is what is measured.
		for range listWarmup {
			for _, d := range w.ordered(0) {
				if st := states[d.name]; brokenReason(st) == "" && ctx.Err() == nil {
					_ = c.call(ctx, d, st)
				}
			}
		}
		for i := range w.opts.listIterations {
			for _, d := range w.ordered(i) {
				st := states[d.name]
				if why := brokenReason(st); why != "" {
					w.res.na(fig, unitMs, d.name, why)
					continue
				}
				if ctx.Err() != nil {
					return
				}
				t := time.Now()
				if err := c.call(ctx, d, st); err != nil {
					d.noteErr(err)
					w.res.fail(fig, unitMs, d.name, err)
					continue
				}
				w.res.add(fig, unitMs, d.name, ms(time.Since(t)))
			}
		}
	}
	w.measureListFloor(ctx, states, suffix)
}

// measureListFloor times the kubelet's client against a replay server
// that answers with each runtime's own ListContainers reply, while the
// daemons still run at this scale.
func (w *workload) measureListFloor(ctx context.Context, states map[string]*scaleState, suffix string) {
	fig := figListFloor + suffix
	for _, d := range w.daemons {
		if why := brokenReason(states[d.name]); why != "" {
			w.res.na(fig, unitMs, d.name, why)
			continue
		}
		if err := w.replayList(ctx, d, fig); err != nil {
			w.res.fail(fig, unitMs, d.name, err)
		}
	}
}

func (w *workload) replayList(ctx context.Context, d *daemon, fig string) error {
	reply, err := d.listContainersReply(ctx, w.opts.callTimeout)
	if err != nil {
		return fmt.Errorf("capture the ListContainers reply: %w", err)
	}
	r, err := startReplayer(ctx, reply, w.opts.callTimeout)
	if err != nil {
		return err
	}
	defer r.stop()
	for range listWarmup {
		if _, err := r.rt.ListContainers(ctx, nil); err != nil {
			return err
		}
	}
	for range w.opts.listIterations {
		t := time.Now()
		if _, err := r.rt.ListContainers(ctx, nil); err != nil {
			return err
		}
		w.res.add(fig, unitMs, d.name, ms(time.Since(t)))
	}
	return nil
}

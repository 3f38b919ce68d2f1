package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Figure names.
const (
	figRunPod        = "RunPodSandbox"
	figCreateStart   = "CreateContainer+StartContainer"
	figWholePod      = "whole pod start (pod + 1 container running)"
	figExec          = "ExecSync `true`"
	figStopRemoveCtr = "StopContainer+RemoveContainer"
	figStopRemovePod = "StopPodSandbox+RemovePodSandbox"
	unitMs           = "ms"
	unitMiB          = "MiB"
)

// workload drives the daemons through the benchmark.
type workload struct {
	opts    options
	res     *results
	daemons []*daemon
	images  benchImages
	logRoot string
	runID   string
	seq     atomic.Int64
	// cyclePods are the recorded cycles' pods by runtime, for the floor.
	cyclePods map[string][]cyclePod
}

// ordered returns the daemons, first-to-run alternating with i so that
// neither always runs on a machine the other has just warmed or loaded.
// A daemon that hung is left out.
func (w *workload) ordered(i int) []*daemon {
	var out []*daemon
	for _, d := range w.daemons {
		if !d.hung() {
			out = append(out, d)
		}
	}
	if i%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// nsOptions are the kubelet's defaults for a pod without host namespaces
// or a shared PID namespace.
func nsOptions() *runtime.NamespaceOption {
	return &runtime.NamespaceOption{
		Network: runtime.NamespaceMode_POD,
		Pid:     runtime.NamespaceMode_CONTAINER,
		Ipc:     runtime.NamespaceMode_POD,
	}
}

// podConfig is a pod as the kubelet would send it for a BestEffort pod.
func (w *workload) podConfig(d *daemon, tag string) (*runtime.PodSandboxConfig, error) {
	n := w.seq.Add(1)
	uid := fmt.Sprintf("%s-%s-%d", w.runID, d.name, n)
	name := fmt.Sprintf("%s-%d", tag, n)
	logDir := filepath.Join(w.logRoot, d.name, uid)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Uid: uid, Namespace: "bench"},
		Hostname:     name,
		LogDirectory: logDir,
		Labels:       map[string]string{"criserver-bench": w.runID},
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent:    d.cgroupParent() + "/pod" + uid,
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: nsOptions()},
		},
	}, nil
}

// containerConfig runs a shell that exits at once on SIGTERM, so that a
// stop measures the runtime, not a grace period.
func (w *workload) containerConfig(name string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: w.images.Busybox},
		Command:  []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"},
		LogPath:  name + ".log",
		Labels:   map[string]string{"criserver-bench": w.runID},
		Linux: &runtime.LinuxContainerConfig{
			Resources:       &runtime.LinuxContainerResources{CpuShares: 2, OomScoreAdj: 1000},
			SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: nsOptions()},
		},
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// startContainer creates and starts one container in a pod. The returned
// ID is set whenever something was created, even if the start failed.
func (w *workload) startContainer(ctx context.Context, d *daemon, podID string, pod *runtime.PodSandboxConfig, name string) (string, error) {
	id, err := d.rt.CreateContainer(ctx, podID, w.containerConfig(name), pod)
	if err != nil {
		return "", fmt.Errorf("CreateContainer: %w", err)
	}
	if err := d.rt.StartContainer(ctx, id); err != nil {
		return id, fmt.Errorf("StartContainer: %w", err)
	}
	return id, nil
}

// removePod stops and removes a pod, with whatever containers it has.
func removePod(ctx context.Context, d *daemon, podID string) error {
	if err := d.rt.StopPodSandbox(ctx, podID); err != nil {
		return fmt.Errorf("StopPodSandbox: %w", err)
	}
	if err := d.rt.RemovePodSandbox(ctx, podID); err != nil {
		return fmt.Errorf("RemovePodSandbox: %w", err)
	}
	return nil
}

// cycle runs one pod through its life, timing each step: run the pod,
// create and start a container, exec in it, stop and remove the
// container, stop and remove the pod.
func (w *workload) cycle(ctx context.Context, d *daemon, record bool) {
	add := func(fig string, v time.Duration) {
		if record {
			w.res.add(fig, unitMs, d.name, ms(v))
		}
	}
	fail := func(fig string, err error) {
		d.noteErr(err)
		if record {
			w.res.fail(fig, unitMs, d.name, err)
		}
	}
	needs := func(step string, err error, figs ...string) {
		why := fmt.Sprintf("needs %s, which failed: %v", step, err)
		if isUnimplemented(err) {
			why = fmt.Sprintf("needs %s: Unimplemented: %s", step, errMessage(err))
		}
		for _, f := range figs {
			fail(f, errNA{why})
		}
	}

	pod, err := w.podConfig(d, "cycle")
	if err != nil {
		fail(figRunPod, err)
		return
	}
	t0 := time.Now()
	podID, err := d.rt.RunPodSandbox(ctx, pod, "")
	tPod := time.Since(t0)
	if err != nil {
		fail(figRunPod, err)
		needs(figRunPod, err, figCreateStart, figWholePod, figExec, figStopRemoveCtr, figStopRemovePod)
		return
	}
	add(figRunPod, tPod)

	// Each pair is also timed by its parts, to show which one dominates.
	var ctrID string
	tCtr, err := timed2(
		func() (err error) {
			ctrID, err = d.rt.CreateContainer(ctx, podID, w.containerConfig("c"), pod)
			return err
		},
		func() error { return d.rt.StartContainer(ctx, ctrID) },
		add, "CreateContainer", "StartContainer")
	tWhole := time.Since(t0)
	if err != nil {
		fail(figCreateStart, err)
		needs(figCreateStart, err, figWholePod, figExec, figStopRemoveCtr)
		if ctrID != "" {
			_ = d.rt.RemoveContainer(ctx, ctrID) // best effort: the pod's removal follows
		}
	} else {
		add(figCreateStart, tCtr)
		add(figWholePod, tWhole)
		if record {
			w.cyclePods[d.name] = append(w.cyclePods[d.name], cyclePod{pod: podID, ctr: ctrID})
		}
		w.execs(ctx, d, ctrID, add, fail)
		tStop, err := timed2(
			func() error { return d.rt.StopContainer(ctx, ctrID, 10) },
			func() error { return d.rt.RemoveContainer(ctx, ctrID) },
			add, "StopContainer", "RemoveContainer")
		if err != nil {
			fail(figStopRemoveCtr, err)
		} else {
			add(figStopRemoveCtr, tStop)
		}
	}

	tRm, err := timed2(
		func() error { return d.rt.StopPodSandbox(ctx, podID) },
		func() error { return d.rt.RemovePodSandbox(ctx, podID) },
		add, "StopPodSandbox", "RemovePodSandbox")
	if err != nil {
		fail(figStopRemovePod, err)
		return
	}
	add(figStopRemovePod, tRm)
}

// timed2 runs a then b, records each one's time under its part name, and
// returns the time of both. It stops at the first error, named by its part.
func timed2(a, b func() error, add func(string, time.Duration), nameA, nameB string) (time.Duration, error) {
	t := time.Now()
	if err := a(); err != nil {
		return 0, fmt.Errorf("%s: %w", nameA, err)
	}
	ta := time.Since(t)
	if err := b(); err != nil {
		return 0, fmt.Errorf("%s: %w", nameB, err)
	}
	total := time.Since(t)
	add("part: "+nameA, ta)
	add("part: "+nameB, total-ta)
	return total, nil
}

func (w *workload) execs(ctx context.Context, d *daemon, ctrID string, add func(string, time.Duration), fail func(string, error)) {
	for range w.opts.execsPerCycle {
		t := time.Now()
		_, stderr, err := d.rt.ExecSync(ctx, ctrID, []string{"true"}, 30*time.Second)
		if err != nil {
			if len(stderr) > 0 {
				err = fmt.Errorf("%w (stderr %q)", err, stderr)
			}
			fail(figExec, err)
			if isUnimplemented(err) {
				return
			}
			continue
		}
		add(figExec, time.Since(t))
	}
}

// cycles warms each daemon up with one unrecorded cycle, then runs the
// recorded ones, alternating the daemons.
func (w *workload) cycles(ctx context.Context) {
	w.cyclePods = map[string][]cyclePod{}
	for _, name := range []string{figRunPod, "part: CreateContainer", "part: StartContainer", figCreateStart, figWholePod, figExec,
		"part: StopContainer", "part: RemoveContainer", figStopRemoveCtr, "part: StopPodSandbox", "part: RemovePodSandbox", figStopRemovePod} {
		w.res.declare(name, unitMs)
	}
	for _, d := range w.daemons {
		w.cycle(ctx, d, false)
	}
	for i := range w.opts.iterations {
		for _, d := range w.ordered(i) {
			if ctx.Err() != nil {
				return
			}
			w.cycle(ctx, d, true)
		}
		klog.V(1).InfoS("Cycle done", "iteration", i+1, "of", w.opts.iterations)
	}
	for _, d := range w.daemons {
		w.floor(d, w.cyclePods[d.name])
	}
}

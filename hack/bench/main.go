// Command bench drives criserver and containerd's CRI plugin through the
// same workload, alternately and in the same run, and writes the figures
// side by side: results.json and a Markdown table (results.md) with the
// ratio criserver ÷ containerd.
//
// By default it sets everything up itself (make bench does this): a local
// registry with images built from Debian packages, containerd with its own
// dirs and socket, criserver likewise; then it stops both and removes what
// they left. With -criserver-endpoint / -containerd-endpoint it drives
// daemons that are already running instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

var termSignal = syscall.SIGTERM

type options struct {
	results           string
	cache             string
	criserverBin      string
	criserverFlags    stringList
	criserverHandler  string
	nriPlugin         string
	pauseSrc          string
	runtimes          stringList
	criserverSock     string
	containerdSock    string
	skip              stringList
	iterations        int
	execsPerCycle     int
	parallel          int
	parallelRounds    int
	pullRounds        int
	scalePods         int
	containersPerPod  int
	densityPods       int
	densityContainers int
	densityBatch      int
	listIterations    int
	callTimeout       time.Duration
	keepState         bool
	cleanupOnly       bool
	registryPort      int
	profile           stringList
}

type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.results, "results", "", "directory for results, logs and the daemons' dirs (required)")
	fs.StringVar(&o.cache, "cache", "", "cache of built images and the debootstrap rootfs (default <results>/cache)")
	fs.StringVar(&o.criserverBin, "criserver-bin", "bin/criserver", "criserver binary to start")
	fs.Var(&o.criserverFlags, "criserver-flag", "extra criserver flag; repeatable")
	fs.StringVar(&o.criserverHandler, "criserver-handler", "", "criserver's default runtime handler (runc or crun; empty: the daemon's choice, crun where it runs)")
	fs.StringVar(&o.nriPlugin, "nri-plugin", "", "NRI plugin binary: criserver runs with NRI on and this plugin, started as <binary> -socket <path>, connected")
	fs.StringVar(&o.pauseSrc, "pause-src", "hack/images/pause.c", "source of containerd's pause process")
	fs.Var(&o.runtimes, "runtimes", "runtimes to drive (default criserver,containerd)")
	fs.StringVar(&o.criserverSock, "criserver-endpoint", "", "socket of a running criserver to drive instead of starting one")
	fs.StringVar(&o.containerdSock, "containerd-endpoint", "", "socket of a running containerd to drive instead of starting one")
	fs.Var(&o.skip, "skip", "phases to skip: cycle,parallel,pull,scale,density")
	fs.IntVar(&o.iterations, "iterations", 30, "pod life cycles per runtime")
	fs.IntVar(&o.execsPerCycle, "execs", 5, "ExecSync calls per cycle")
	fs.IntVar(&o.parallel, "parallel", 20, "pods started at once in the parallel phase")
	fs.IntVar(&o.parallelRounds, "parallel-rounds", 3, "rounds of the parallel phase")
	fs.IntVar(&o.pullRounds, "pull-rounds", 3, "cold+warm pull rounds")
	fs.IntVar(&o.scalePods, "scale-pods", 100, "pods in the scale phase")
	fs.IntVar(&o.containersPerPod, "containers-per-pod", 5, "containers per pod at the scale phase's second level")
	fs.IntVar(&o.densityPods, "density-pods", 110, "pods in the density phase (the kubelet's default maximum per node)")
	fs.IntVar(&o.densityContainers, "density-containers", 2, "containers per pod in the density phase")
	fs.IntVar(&o.densityBatch, "density-batch", 10, "pods started at once in the density phase")
	fs.IntVar(&o.listIterations, "list-iterations", 100, "calls of each List/Status RPC per level")
	fs.DurationVar(&o.callTimeout, "call-timeout", 2*time.Minute, "timeout of each CRI call")
	fs.BoolVar(&o.keepState, "keep-state", false, "keep the daemons' root and state dirs")
	fs.IntVar(&o.registryPort, "registry-port", 0, "port of the local registry on 127.0.0.1 (0: a free one); fix it for daemons given by -*-endpoint")
	fs.Var(&o.profile, "profile", "phases during which to sample each daemon with perf (e.g. cycle); summaries go to <results>/<runtime>-<phase>.profile.txt")
	fs.BoolVar(&o.cleanupOnly, "cleanup", false, "only remove what a killed run left in -results (processes, mounts, bridges, cgroups), then exit")
	klog.InitFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.results == "" {
		return o, fmt.Errorf("-results is required")
	}
	if len(o.runtimes) == 0 {
		o.runtimes = stringList{rtCriserver, rtContainerd}
	}
	for _, r := range o.runtimes {
		if r != rtCriserver && r != rtContainerd {
			return o, fmt.Errorf("-runtimes: unknown runtime %q", r)
		}
	}
	var err error
	if o.results, err = filepath.Abs(o.results); err != nil {
		return o, err
	}
	if o.cache == "" {
		o.cache = filepath.Join(o.results, "cache")
	}
	return o, nil
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == replayCommand {
		if err := replayMain(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", replayCommand+":", err)
			os.Exit(1)
		}
		return
	}
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	// The kubelet's client logs every failed call; the report has them
	// already, so its log goes nowhere.
	ctx := klog.NewContext(context.Background(), logr.Discard())
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	err = run(ctx, opts)
	stop()
	if err != nil {
		klog.ErrorS(err, "Benchmark failed")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func (o options) skipped(phase string) bool { return slices.Contains(o.skip, phase) }

func run(ctx context.Context, opts options) error {
	for _, dir := range []string{opts.results, opts.cache} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	// A run that was killed leaves its daemons, pods and mounts behind;
	// clear them before starting anew.
	cleanupStale(opts)
	if opts.cleanupOnly {
		return nil
	}
	rep := &report{
		Started:  time.Now().UTC(),
		Command:  strings.Join(os.Args, " "),
		Machine:  describeMachine(),
		Versions: toolVersions(),
		Settings: map[string]any{
			"iterations": opts.iterations, "execs_per_cycle": opts.execsPerCycle,
			"parallel": opts.parallel, "parallel_rounds": opts.parallelRounds,
			"pull_rounds": opts.pullRounds, "scale_pods": opts.scalePods,
			"containers_per_pod": opts.containersPerPod, "list_iterations": opts.listIterations,
			"density_pods": opts.densityPods, "density_containers": opts.densityContainers, "density_batch": opts.densityBatch,
		},
	}
	res := &results{}

	reg, err := startRegistry(ctx, filepath.Join(opts.results, "registry"), opts.registryPort)
	if err != nil {
		return err
	}
	defer func() {
		reg.Stop()
		os.RemoveAll(filepath.Join(opts.results, "registry", "storage"))
	}()
	klog.InfoS("Registry up", "addr", reg.Addr)
	images, err := buildAndPush(ctx, reg, opts.cache, opts.pauseSrc, !opts.skipped("pull"))
	if err != nil {
		return err
	}
	klog.InfoS("Images pushed", "busybox", images.Busybox, "big", images.Big, "bigBytes", images.BigSize)

	w := &workload{opts: opts, res: res, images: images,
		logRoot: filepath.Join(opts.results, "pod-logs"), runID: fmt.Sprintf("r%d", time.Now().Unix())}
	defer func() {
		for _, d := range w.daemons {
			teardown(d, opts.keepState, w.runID)
		}
	}()
	for _, name := range opts.runtimes {
		d, err := setUp(ctx, opts, name, reg, images)
		if err != nil && d != nil {
			teardown(d, opts.keepState, w.runID)
		}
		if err != nil {
			// The other runtime's figures are still worth having.
			klog.ErrorS(err, "Runtime unavailable; its figures are n/a", "runtime", name)
			res.na("daemon RSS idle", unitMiB, name, "daemon did not start")
			res.note(name, "daemon did not start: "+err.Error())
			continue
		}
		if v, err := d.rt.Version(ctx, ""); err == nil {
			rep.Versions[name+" (CRI Version)"] = v.RuntimeName + " " + v.RuntimeVersion
		}
		w.daemons = append(w.daemons, d)
	}
	if len(w.daemons) == 0 {
		return fmt.Errorf("no runtime to drive")
	}
	w.prepare(ctx)

	phases := []struct {
		name string
		run  func(context.Context)
	}{
		{"cycle", w.cycles},
		{"parallel", w.parallel},
		{"pull", w.pulls},
		{"scale", w.scale},
		{"density", w.density},
	}
	for _, p := range phases {
		if opts.skipped(p.name) || ctx.Err() != nil {
			continue
		}
		klog.InfoS("Phase", "name", p.name)
		profs := startProfilers(opts, p.name, w.daemons)
		t := time.Now()
		p.run(ctx)
		klog.InfoS("Phase done", "name", p.name, "took", time.Since(t).Round(time.Millisecond))
		for _, prof := range profs {
			prof.finish()
		}
	}

	rep.Machine["loadavg_end"] = loadAvg()
	rep.Figures = res.finish()
	rep.Notes = res.notes
	rep.Finished = time.Now().UTC()
	if err := writeReport(opts.results, rep); err != nil {
		return err
	}
	writeTable(os.Stdout, rep)
	return ctx.Err()
}

func startProfilers(opts options, phase string, daemons []*daemon) []*profiler {
	if !slices.Contains(opts.profile, phase) {
		return nil
	}
	var out []*profiler
	for _, d := range daemons {
		p, err := startProfiler(opts.results, phase, d)
		if err != nil {
			klog.ErrorS(err, "No profile", "runtime", d.name, "phase", phase)
			continue
		}
		out = append(out, p)
	}
	return out
}

// setUp starts (or connects to) one runtime.
func setUp(ctx context.Context, opts options, name string, reg *registry, images benchImages) (*daemon, error) {
	dir := filepath.Join(opts.results, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	external := map[string]string{rtCriserver: opts.criserverSock, rtContainerd: opts.containerdSock}[name]
	if external != "" {
		d := &daemon{name: name, socket: external, dir: dir}
		return d, d.connect(ctx, opts.callTimeout)
	}
	switch name {
	case rtContainerd:
		return startContainerd(ctx, dir, reg, images.Pause, opts.callTimeout)
	default:
		bin, err := filepath.Abs(opts.criserverBin)
		if err != nil {
			return nil, err
		}
		// -v=4 logs the time of each program the daemon runs: the floor.
		return startCriserver(ctx, dir, bin, opts.criserverHandler, opts.callTimeout, append([]string{"-v=4"}, opts.criserverFlags...), opts.nriPlugin)
	}
}

// prepare pulls the images every phase needs and records idle RSS.
func (w *workload) prepare(ctx context.Context) {
	for _, d := range w.daemons {
		for _, ref := range []string{w.images.Busybox, w.images.Pause} {
			if ref == w.images.Pause && d.name != rtContainerd {
				continue
			}
			if err := pull(ctx, d, ref); err != nil {
				klog.ErrorS(err, "Pre-pull failed", "runtime", d.name)
				w.res.note(d.name, "pre-pull failed, so containers of this image cannot be created: "+err.Error())
			}
		}
		if v, err := daemonRSS(d); err != nil {
			w.res.fail("daemon RSS idle", unitMiB, d.name, err)
		} else {
			w.res.add("daemon RSS idle", unitMiB, d.name, v)
		}
	}
}

// teardown removes every pod the runtime still has, stops it if the
// harness started it, and cleans up the host after it.
func teardown(d *daemon, keepState bool, runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if d.rt != nil {
		filter := &runtime.PodSandboxFilter{LabelSelector: map[string]string{"criserver-bench": runID}}
		if pods, err := d.rt.ListPodSandbox(ctx, filter); err == nil {
			ids := make([]string, 0, len(pods))
			for _, p := range pods {
				ids = append(ids, p.Id)
			}
			if err := removePods(ctx, d, ids, 4); err != nil {
				klog.ErrorS(err, "Removing pods at teardown", "runtime", d.name)
			}
		}
	}
	if d.proc == nil {
		// Not ours: leave the daemon and its host state alone, but for the
		// empty pod cgroups runc left under the parent the harness chose.
		logLeftovers(d.name, removeCgroups(d.cgroupParent()))
		return
	}
	d.stop()
	logLeftovers(d.name, cleanupHost(d, keepState))
}

// cleanupStale removes what an earlier run in the same results dir left.
func cleanupStale(opts options) {
	stubs := []*daemon{
		{name: rtCriserver, dir: filepath.Join(opts.results, rtCriserver), bridge: criserverNetwork.bridge},
		{name: rtContainerd, dir: filepath.Join(opts.results, rtContainerd), bridge: containerdNetwork.bridge},
		{name: "registry", dir: filepath.Join(opts.results, "registry")},
	}
	for _, d := range stubs {
		if _, err := os.Stat(d.dir); err != nil {
			continue
		}
		if external := map[string]string{rtCriserver: opts.criserverSock, rtContainerd: opts.containerdSock}[d.name]; external != "" {
			continue // a daemon the harness does not own
		}
		logLeftovers(d.name, cleanupHost(d, opts.keepState))
	}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

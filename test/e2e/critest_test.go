package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// critestSkip names specs the run leaves out, by a regular expression on
// the full spec text, and why.
type critestSkip struct {
	spec   string
	reason string
}

// critestSkips are the only specs of critest's validation suite that do
// not run. Everything else must pass.
var critestSkips = []critestSkip{
	{spec: `Image Manager public image with digest should be pulled and removed`,
		reason: "pins the manifest digest of the upstream image; a locally built image cannot have it"},
	{spec: `AppArmor`,
		reason: "the host has no AppArmor (its specs load profiles with apparmor_parser)"},
}

// critestOnRuncSkip leaves the critestOnRunc specs out of criserver's main
// run, which runs them on runc afterwards.
var critestOnRuncSkip = critestSkip{spec: critestOnRunc,
	reason: "they run on runc after the main run (runCritestOnRunc): the default handler, crun 1.8.1, has no `features` command, so criserver reports neither user namespaces nor recursive read-only mounts for it"}

// critestOnRunc selects critest's specs that need a handler with user
// namespaces or recursive read-only mounts. critest runs them on the
// handler it is given and skips them when Status says the handler lacks
// the feature; the main run gives none, the default (crun), so they run a
// second time with --runtime-handler=runc. All critestOnRuncCount must pass.
const (
	critestOnRunc      = `Security Context UserNamespaces|Container Mount Readonly runtime should support readonly mounts should (support|reject a) recursive`
	critestOnRuncCount = 6 + 4
)

// TestCritest runs cri-tools' critest validation suite against a daemon of
// its own. Its images are built here, served by a local registry under
// their upstream names, and mapped to it by a registries.conf, so RepoTags
// keep the names the specs compare against. CRITEST_BENCHMARK=1 also runs
// the benchmark suite and prints its medians; CRITEST_FOCUS runs only the
// specs it matches.
func TestCritest(t *testing.T) {
	framework.Require(t)
	bin := critestBinary(t)
	results := resultsDir(t, "CRITEST_RESULTS")

	reg := framework.StartRegistry(t)
	pushCritestImages(t, reg, critestCache())
	conf := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(conf, []byte(critestRegistriesConf(reg.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}

	// critest's NRI specs hold a joining plugin's Synchronize for 2 s,
	// which the default request timeout (2 s) would cut short.
	nriDir := t.TempDir()
	nriSock := filepath.Join(nriDir, "nri.sock")
	nriConf := fmt.Sprintf("[nri]\nenable = true\nsocket_path = %q\nplugin_path = %q\nplugin_config_path = %q\nplugin_request_timeout = \"5s\"\n",
		nriSock, filepath.Join(nriDir, "plugins"), filepath.Join(nriDir, "conf.d"))
	e := startLeakDaemon(t, framework.WithArgs("--registries-config", conf), framework.WithConfig(nriConf))
	ids := newIDSet(e.d)
	warmUp(t, e.d, ids)
	warmUpUserNamespace(t, e.d, ids, "runc")
	removeAllImages(t, e.d)
	before := e.snapshot(t, ids)
	files := listTree(e.d.Root, e.d.State)
	bridged := bridgePorts(t)

	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); watchIDs(ctx, e.d, ids) }()

	endpoint := "unix://" + e.d.Socket
	mainArgs := append([]string{"-nri-socket=" + nriSock}, critestFocusArgs()...)
	runCritestSuite(t, bin, endpoint, results, "critest", append(critestSkips, critestOnRuncSkip), mainArgs...)
	// A focused run leaves out the runc run too.
	if os.Getenv("CRITEST_FOCUS") == "" {
		runCritestOnRunc(t, bin, endpoint, results)
	}
	if os.Getenv("CRITEST_BENCHMARK") == "1" {
		runCritestBenchmark(t, bin, endpoint, results)
	}
	cancel()
	<-watched

	// Whatever critest created must be gone: remove the images it left
	// pulled, then every count the daemon holds must be back.
	removeAllImages(t, e.d)
	if after := e.checkNoGrowth(t, ids, before); after.Files != before.Files {
		logNewFiles(t, e.d, files)
	}
	if after := bridgePorts(t); after != bridged {
		t.Errorf("veths on the pod bridge: %d before, %d after", bridged, after)
	}
}

// TestCritestContainerd runs the same validation suite against Debian's
// containerd, with the same images and skips, for the README's side-by-side
// table (make test-critest RUNTIME=containerd). Its default handler is
// runc, so the user namespace and recursive read-only specs are in its one
// run.
func TestCritestContainerd(t *testing.T) {
	if os.Getenv("CRISERVER_CONTAINERD") != "1" {
		t.Skip("CRISERVER_CONTAINERD=1 runs it (make test-critest RUNTIME=containerd)")
	}
	framework.Require(t)
	bin := critestBinary(t)
	results := resultsDir(t, "CRITEST_RESULTS")
	reg := framework.StartRegistry(t)
	pushCritestImages(t, reg, critestCache())
	c := framework.StartContainerd(t, containerdMirrors(reg.Addr), critestPause)
	runCritestSuite(t, bin, "unix://"+c.Socket, results, "critest", critestSkips, critestFocusArgs()...)
}

// critestFocusArgs are critest's arguments for CRITEST_FOCUS, a regular
// expression of the specs to run (e.g. "metrics operations"), for criserver
// and containerd alike.
func critestFocusArgs() []string {
	if focus := os.Getenv("CRITEST_FOCUS"); focus != "" {
		return []string{"--ginkgo.focus=" + focus}
	}
	return nil
}

// critestPause is containerd's sandbox image in critest's runs, one of
// critest's own images.
const critestPause = "registry.k8s.io/pause:3.9"

// resultsDir is the directory $env names, made if missing, or a temporary
// one.
func resultsDir(t *testing.T, env string) string {
	t.Helper()
	dir := os.Getenv(env)
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runCritestSuite runs critest's validation suite against endpoint without
// the skipped specs, with its log and JSON report in results as name.log
// and name.json, and fails for each failed spec. It returns the counts.
func runCritestSuite(t *testing.T, bin, endpoint, results, name string, skips []critestSkip, args ...string) map[string]int {
	t.Helper()
	report := filepath.Join(results, name+".json")
	logPath := filepath.Join(results, name+".log")
	args = append([]string{"--ginkgo.v", "--ginkgo.json-report=" + report}, args...)
	for _, s := range skips {
		args = append(args, "--ginkgo.skip="+s.spec)
	}
	runErr := runCritest(t, bin, endpoint, logPath, args...)
	counts, failed, err := readCritestReport(report)
	if err != nil {
		t.Fatalf("%s (%v): %v; see %s", name, runErr, err, logPath)
	}
	t.Logf("%s %s: %d passed, %d failed, %d skipped (log and report in %s)",
		name, filepath.Base(filepath.Dir(bin)), counts["passed"], len(failed), counts["skipped"], results)
	for _, f := range failed {
		t.Errorf("%s: spec failed: %s", name, f)
	}
	if runErr != nil && len(failed) == 0 {
		t.Errorf("%s: %v; see %s", name, runErr, logPath)
	}
	return counts
}

// warmUpImage is critest's default image, pulled through the
// registries.conf mapping.
const warmUpImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// warmUp runs one pod and container, with an exec, on the default handler,
// then removes them (the caller removes the image): the directories the
// daemon makes on first use exist before the leak check's first count.
func warmUp(t *testing.T, d *framework.Daemon, ids *idSet) {
	t.Helper()
	ctx := framework.Ctx(t)
	if _, err := d.Image.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: warmUpImage}}); err != nil {
		t.Fatalf("pull %s through the registry mapping: %v", warmUpImage, err)
	}
	if err := lifecycle(t, d, "", warmUpImage, d.PodConfig(t, "warm"), ids, nil); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
}

// warmUpUserNamespace does what warmUp does on handler, in a pod with a
// user namespace, as the specs of runCritestOnRunc do: a handler's state
// directory and what the daemon starts on a handler's first use are made
// once, and must be there before the leak check's first count.
func warmUpUserNamespace(t *testing.T, d *framework.Daemon, ids *idSet, handler string) {
	t.Helper()
	requireUserNamespaces(t, d, handler)
	cfg := d.PodConfig(t, "warm-"+handler)
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: usernsHostID, Length: 65536}}
	cfg.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{
		UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping},
	}
	if err := lifecycle(t, d, handler, warmUpImage, cfg, ids, nil); err != nil {
		t.Fatalf("warm-up on %s with a user namespace: %v", handler, err)
	}
}

// logNewFiles logs the paths under d's root and state that are not in
// files (an earlier listTree).
func logNewFiles(t *testing.T, d *framework.Daemon, files []string) {
	t.Helper()
	for _, f := range listTree(d.Root, d.State) {
		if !slices.Contains(files, f) {
			t.Logf("new since the first count: %s", f)
		}
	}
}

// listTree lists the paths below dirs.
func listTree(dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// critestBinary is $CRITEST_DIR/critest, or the one hack/critest/build.sh
// builds (once per cri-tools version, cached).
func critestBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CRITEST_DIR")
	if dir == "" {
		cmd := exec.Command("bash", "../../hack/critest/build.sh")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("build critest: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	bin := filepath.Join(dir, "critest")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("critest: %v", err)
	}
	return bin
}

// critestCache keeps the downloaded Debian packages between runs.
func critestCache() string {
	if dir := os.Getenv("CRITEST_CACHE"); dir != "" {
		return dir
	}
	return "/var/cache/criserver/critest-images"
}

// containerdMirrors maps each upstream registry to its copy on the local
// registry, as framework.StartContainerd writes them to hosts.toml files.
func containerdMirrors(addr string) map[string]string {
	m := map[string]string{}
	for _, r := range critestRegistries {
		m[r] = "http://" + addr + "/v2/" + r
	}
	return m
}

// critestRegistriesConf maps each upstream registry to its path on the
// local registry (containers-registries.conf(5)).
func critestRegistriesConf(addr string) string {
	var b strings.Builder
	for _, r := range critestRegistries {
		fmt.Fprintf(&b, "[[registry]]\nprefix = %q\nlocation = %q\ninsecure = true\n\n", r, addr+"/"+r)
	}
	return b.String()
}

// runCritest runs critest against the CRI endpoint with output to logPath.
func runCritest(t *testing.T, bin, endpoint, logPath string, args ...string) error {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{
		"--runtime-endpoint=" + endpoint, "--image-endpoint=" + endpoint,
		"--ginkgo.no-color", "--ginkgo.timeout=50m",
	}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	return cmd.Run()
}

// runCritestOnRunc runs the critestOnRunc specs on the runc handler; every
// one of them must run and pass.
func runCritestOnRunc(t *testing.T, bin, endpoint, results string) {
	t.Helper()
	counts := runCritestSuite(t, bin, endpoint, results, "critest-runc", nil,
		"--runtime-handler=runc", "--ginkgo.focus="+critestOnRunc)
	if counts["passed"] != critestOnRuncCount {
		t.Errorf("critest passed %d of its %d user namespace and recursive read-only specs on runc", counts["passed"], critestOnRuncCount)
	}
}

// ginkgoSpec is the part of a ginkgo JSON report entry the harness reads.
type ginkgoSpec struct {
	ContainerHierarchyTexts []string
	LeafNodeText            string
	LeafNodeType            string
	State                   string
	Failure                 *struct {
		Message  string
		Location struct {
			FileName   string
			LineNumber int
		}
	}
}

// readCritestReport counts the specs of a ginkgo JSON report by state and
// lists the failed ones (full text and failure).
func readCritestReport(path string) (map[string]int, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var reports []struct{ SpecReports []ginkgoSpec }
	if err := json.Unmarshal(data, &reports); err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	counts := map[string]int{}
	var failed []string
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != "It" {
				// A failed BeforeSuite or AfterSuite fails the run too.
				if s.State != "passed" && s.State != "skipped" {
					failed = append(failed, s.LeafNodeType+": "+s.State+failureText(s))
				}
				continue
			}
			switch s.State {
			case "passed", "skipped", "pending":
				counts[s.State]++
			default:
				counts["failed"]++
				failed = append(failed, strings.Join(append(s.ContainerHierarchyTexts, s.LeafNodeText), " ")+": "+s.State+failureText(s))
			}
		}
	}
	if len(counts) == 0 && len(failed) == 0 {
		return nil, nil, fmt.Errorf("%s holds no specs", path)
	}
	return counts, failed, nil
}

func failureText(s ginkgoSpec) string {
	if s.Failure == nil {
		return ""
	}
	msg := s.Failure.Message
	if len(msg) > 500 {
		msg = msg[:500] + "..."
	}
	return fmt.Sprintf(" (%s:%d) %s", filepath.Base(s.Failure.Location.FileName), s.Failure.Location.LineNumber, msg)
}

// watchIDs records the pods and containers d holds until ctx ends, so the
// leak check can look for what critest's short-lived objects left behind.
func watchIDs(ctx context.Context, d *framework.Daemon, ids *idSet) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if pods, err := d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); err == nil {
			for _, p := range pods.Items {
				ids.add(p.Id)
			}
		}
		if cs, err := d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{}); err == nil {
			for _, c := range cs.Containers {
				ids.add(c.Id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// bridgePorts counts the interfaces attached to the pod bridge. Runs hold
// the e2e lock, so no other daemon adds or removes any meanwhile.
func bridgePorts(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "master", "criserver0").Output()
	if err != nil {
		// No bridge yet: no ports.
		return 0
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

func removeAllImages(t *testing.T, d *framework.Daemon) {
	t.Helper()
	ctx := framework.Ctx(t)
	imgs, err := d.Image.ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatalf("list images: %v", err)
	}
	for _, img := range imgs.Images {
		if _, err := d.Image.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: img.Id}}); err != nil {
			t.Errorf("remove image %s %v: %v", img.Id, img.RepoTags, err)
		}
	}
}

// critestBenchmarkParams sizes critest's benchmarks, which skip themselves
// without a count (CRITEST_BENCHMARK_PARAMS names another file).
const critestBenchmarkParams = `containersNumber: 20
containersNumberParallel: 1
podsNumber: 20
podsNumberParallel: 1
imagesNumber: 10
imagesNumberParallel: 1
`

// runCritestBenchmark runs critest's benchmark suite and logs the median
// of each operation it measures.
func runCritestBenchmark(t *testing.T, bin, endpoint, results string) {
	t.Helper()
	out := filepath.Join(results, "benchmark")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	params := os.Getenv("CRITEST_BENCHMARK_PARAMS")
	if params == "" {
		params = filepath.Join(results, "benchmark-params.yaml")
		if err := os.WriteFile(params, []byte(critestBenchmarkParams), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(results, "critest-benchmark.log")
	if err := runCritest(t, bin, endpoint, logPath, "--benchmark", "--benchmarking-params-file="+params, "--benchmarking-output-dir="+out); err != nil {
		t.Errorf("critest --benchmark: %v; see %s", err, logPath)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.json"))
	sort.Strings(files)
	for _, f := range files {
		lines, err := benchmarkMedians(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, l := range lines {
			t.Logf("benchmark %s: %s", strings.TrimSuffix(filepath.Base(f), "_benchmark_data.json"), l)
		}
	}
	// Benchmarks without a data file report their measurements as tables.
	for _, l := range measurementTables(logPath) {
		t.Log(l)
	}
}

// measurementTables returns the gmeasure tables (Min, Median, Mean...)
// of a critest log.
func measurementTables(logPath string) []string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return nil
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.Contains(l, "Report Entries >>"):
			in = true
		case strings.Contains(l, "<< Report Entries"):
			in = false
		case in && strings.Contains(l, "|"):
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// benchmarkMedians reads one LifecycleBenchmarksResultsSet of critest
// and returns "operation median (n samples)" per operation.
func benchmarkMedians(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set struct {
		OperationsNames []string `json:"operationsNames"`
		Datapoints      []struct {
			OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
		} `json:"datapoints"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var out []string
	for i, name := range set.OperationsNames {
		var ns []int64
		for _, dp := range set.Datapoints {
			if i < len(dp.OperationsDurationsNs) {
				ns = append(ns, dp.OperationsDurationsNs[i])
			}
		}
		if len(ns) == 0 {
			continue
		}
		slices.Sort(ns)
		out = append(out, fmt.Sprintf("%s median %v (%d samples)", name, time.Duration(ns[len(ns)/2]).Round(time.Microsecond), len(ns)))
	}
	return out, nil
}

// TestCritestSkipsCompile checks that every skip is a valid regular
// expression with a reason.
func TestCritestSkipsCompile(t *testing.T) {
	for _, s := range critestSkips {
		if _, err := regexp.Compile(s.spec); err != nil {
			t.Errorf("skip %q: %v", s.spec, err)
		}
		if s.reason == "" {
			t.Errorf("skip %q has no reason", s.spec)
		}
	}
}

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// nriEvent is one line the test plugin (test/e2e/nriplugin) records.
type nriEvent struct {
	Event      string    `json:"event"`
	Pod        string    `json:"pod"`
	Container  string    `json:"container"`
	Name       string    `json:"name"`
	Time       time.Time `json:"time"`
	Pods       []string  `json:"pods"`
	Containers []string  `json:"containers"`
}

// nriConfig enables NRI with its socket at sock and no plugin directory.
func nriConfig(t *testing.T, sock, requestTimeout string) framework.Option {
	dir := t.TempDir()
	return framework.WithConfig(fmt.Sprintf(`[nri]
enable = true
socket_path = %q
plugin_path = %q
plugin_config_path = %q
plugin_request_timeout = %q
`, sock, filepath.Join(dir, "plugins"), filepath.Join(dir, "conf.d"), requestTimeout))
}

type nriPlugin struct {
	cmd    *exec.Cmd
	events string
	done   chan struct{}
}

// startNRIPlugin runs the test plugin against sock and waits until it has
// synchronized with the daemon.
func startNRIPlugin(t *testing.T, sock, name, mode, hostDir string) *nriPlugin {
	t.Helper()
	// Built per test (the Go build cache makes it quick): t's temp dir holds it.
	bin := framework.BuildCommand(t, "./test/e2e/nriplugin")
	p := &nriPlugin{events: filepath.Join(t.TempDir(), name+".events"), done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-socket", sock, "-name", name, "-events", p.events, "-mode", mode, "-host-dir", hostDir)
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	p.waitFor(t, "Synchronize", func(ev []nriEvent) bool { return slices.ContainsFunc(ev, isEvent("Synchronize")) })
	return p
}

func isEvent(name string) func(nriEvent) bool {
	return func(e nriEvent) bool { return e.Event == name }
}

func (p *nriPlugin) read(t *testing.T) []nriEvent {
	t.Helper()
	f, err := os.Open(p.events)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []nriEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e nriEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func (p *nriPlugin) waitFor(t *testing.T, what string, ok func([]nriEvent) bool) []nriEvent {
	t.Helper()
	var ev []nriEvent
	if !framework.Poll(20*time.Second, func() bool { ev = p.read(t); return ok(ev) }) {
		t.Fatalf("NRI plugin did not record %s; events: %+v", what, ev)
	}
	return ev
}

// podEvents are the names of the events about pod, in order.
func podEvents(ev []nriEvent, pod string) []string {
	var out []string
	for _, e := range ev {
		if e.Pod == pod {
			out = append(out, e.Event)
		}
	}
	return out
}

func readSpec(t *testing.T, bundle string) specs.Spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNRIEventsAndAdjustments runs a pod and a container through their
// lifecycle with a plugin that joins late and adjusts every container.
func TestNRIEventsAndAdjustments(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nri.sock")
	e := newCtrEnv(t, nriConfig(t, sock, "2s"))
	ctx := framework.Ctx(t)
	early := e.run(t, e.config("early", "sleep 1000"))

	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "hello"), []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startNRIPlugin(t, sock, "adjuster", "adjust", hostDir)

	// A plugin that joins late sees what exists.
	ev := p.read(t)
	sync := ev[slices.IndexFunc(ev, isEvent("Synchronize"))]
	if !slices.Contains(sync.Pods, e.pod) || !slices.Contains(sync.Containers, early) {
		t.Errorf("Synchronize got pods %v containers %v, want pod %s and container %s", sync.Pods, sync.Containers, e.pod, early)
	}

	podCf := e.d.PodConfig(t, "nri")
	run, err := e.d.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCf})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	pod := run.PodSandboxId
	cfg := e.config("adjusted", `echo "env=$NRI_ENV"; cat /nri/hello; echo x >/dev/nri-null && echo device-ok; sleep 1000`)
	created, err := e.d.Runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCf})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	id := created.ContainerId
	e.start(t, id)
	_, info := e.status(t, id)

	// Each adjustment reached the spec, and the container sees them.
	spec := readSpec(t, info.Bundle)
	if spec.Annotations["nri.test/annotation"] != "from-plugin" {
		t.Errorf("annotation missing from the spec: %v", spec.Annotations)
	}
	if r := spec.Linux.Resources; r.Memory == nil || r.Memory.Limit == nil || *r.Memory.Limit != 96<<20 || r.Pids == nil || *r.Pids.Limit != 321 {
		t.Errorf("resources not adjusted: %+v", r)
	}
	if len(spec.Process.Rlimits) != 0 {
		t.Errorf("rlimits reached the spec: %v", spec.Process.Rlimits)
	}
	if !strings.Contains(e.d.Output(), "Not applying the rlimits NRI plugins asked for") {
		t.Errorf("daemon log does not say the rlimits were skipped")
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "hook-ran")); err != nil || strings.TrimSpace(string(b)) != "ran" {
		t.Errorf("OCI hook did not run: %q, %v", b, err)
	}
	waitLogLines(t, e, podCf.LogDirectory, "adjusted/0.log", []string{"stdout F env=from-plugin", "stdout F hello from the host", "stdout F device-ok"})

	// UpdateContainer: the plugin doubles the CPU shares asked for.
	if _, err := e.d.Runtime.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: 300},
	}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	if st, _ := e.status(t, id); st.GetResources().GetLinux().GetCpuShares() != 600 {
		t.Errorf("cpu shares after update = %d, want the plugin's 600", st.GetResources().GetLinux().GetCpuShares())
	}

	if _, err := e.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	e.remove(t, id)
	for range 2 { // a second stop of a stopped pod tells plugins nothing
		if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"RunPodSandbox", "CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer",
		"UpdateContainer", "PostUpdateContainer", "StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox",
	}
	ev = p.waitFor(t, "RemovePodSandbox", func(ev []nriEvent) bool { return slices.ContainsFunc(ev, isEvent("RemovePodSandbox")) })
	if got := podEvents(ev, pod); !slices.Equal(got, want) {
		t.Errorf("events of pod %s:\n got %v\nwant %v", pod, got, want)
	}

	// A container that exits by itself is reported stopped without a call.
	exits := e.run(t, e.config("exits", "exit 3"))
	e.waitExit(t, exits, 30*time.Second)
	p.waitFor(t, "StopContainer of a container that exited", func(ev []nriEvent) bool {
		return slices.ContainsFunc(ev, func(x nriEvent) bool { return x.Event == "StopContainer" && x.Container == exits })
	})
}

// waitLogLines waits until the log at logDir/logPath holds exactly want.
func waitLogLines(t *testing.T, e *ctrEnv, logDir, logPath string, want []string) {
	t.Helper()
	var got []string
	if !framework.Poll(20*time.Second, func() bool {
		got = e.logLinesIn(t, logDir, logPath)
		return slices.Equal(got, want)
	}) {
		t.Fatalf("container log = %q, want %q", got, want)
	}
}

// TestNRIHookFailure: a plugin that fails RunPodSandbox and CreateContainer
// fails those calls; nothing is left behind, and a retry succeeds.
func TestNRIHookFailure(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nri.sock")
	e := newCtrEnv(t, nriConfig(t, sock, "2s"))
	ctx := framework.Ctx(t)
	p := startNRIPlugin(t, sock, "failer", "fail", t.TempDir())

	podCf := e.d.PodConfig(t, "nri-fail")
	if _, err := e.d.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCf}); err == nil {
		t.Fatal("RunPodSandbox succeeded although the plugin failed it")
	}
	ev := p.read(t)
	failedPod := ev[slices.IndexFunc(ev, isEvent("RunPodSandbox"))].Pod
	pods, err := e.d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range pods.Items {
		if sb.Id == failedPod || sb.Metadata.Name == podCf.Metadata.Name {
			t.Errorf("pod %s left after a failed RunPodSandbox", sb.Id)
		}
	}
	for _, dir := range []string{filepath.Join(e.d.Root, "pods", failedPod+".json"), filepath.Join(e.d.Root, "pods", failedPod), filepath.Join(e.d.State, "pods", failedPod), filepath.Join(e.d.State, "netns", failedPod)} {
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left after a failed RunPodSandbox", dir)
		}
	}
	run, err := e.d.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCf})
	if err != nil {
		t.Fatalf("RunPodSandbox retry: %v", err)
	}
	t.Cleanup(func() {
		_, _ = e.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId})
		_, _ = e.d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId})
	})

	before, _ := os.ReadDir(filepath.Join(e.d.Root, "containers"))
	cfg := e.config("refused", "sleep 1000")
	if _, err := e.d.Runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCf}); err == nil {
		t.Fatal("CreateContainer succeeded although the plugin failed it")
	}
	ev = p.read(t)
	failedCtr := ev[slices.IndexFunc(ev, isEvent("CreateContainer"))].Container
	if _, err := e.d.Runtime.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: failedCtr}); status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStatus of the refused container: %v, want NotFound", err)
	}
	after, _ := os.ReadDir(filepath.Join(e.d.Root, "containers"))
	if len(after) != len(before) {
		t.Errorf("container records before %d, after the failed create %d", len(before), len(after))
	}
	if mounts, _ := framework.MountsUnder(e.d.Dir); slices.ContainsFunc(mounts, func(m string) bool { return strings.Contains(m, failedCtr) }) {
		t.Errorf("mount of the refused container left: %v", mounts)
	}
	id := e.run(t, cfg) // same name: the failed create freed it
	e.remove(t, id)
}

// TestNRIPluginHangsOrCrashes: a plugin that never answers or dies in a
// hook costs one request timeout and is dropped; the daemon carries on.
func TestNRIPluginHangsOrCrashes(t *testing.T) {
	for _, mode := range []string{"hang", "crash"} {
		t.Run(mode, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "nri.sock")
			e := newCtrEnv(t, nriConfig(t, sock, "3s"))
			ctx := framework.Ctx(t)
			p := startNRIPlugin(t, sock, mode+"er", mode, t.TempDir())

			type result struct {
				id  string
				err error
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				resp, err := e.d.Runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{
					PodSandboxId: e.pod, Config: e.config("first", "sleep 1000"), SandboxConfig: e.podCf,
				})
				done <- result{resp.GetContainerId(), err}
			}()
			ev := p.waitFor(t, "CreateContainer", func(ev []nriEvent) bool { return slices.ContainsFunc(ev, isEvent("CreateContainer")) })
			hooked := ev[slices.IndexFunc(ev, isEvent("CreateContainer"))].Container
			if mode == "hang" {
				// Nothing of the container shows while its hook runs.
				list, err := e.d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range list.Containers {
					if c.Id == hooked {
						t.Errorf("container %s listed while its CreateContainer hook runs", hooked)
					}
				}
				if _, err := e.d.Runtime.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: hooked}); status.Code(err) != codes.NotFound {
					t.Errorf("ContainerStatus while the hook runs: %v, want NotFound", err)
				}
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("CreateContainer still blocked %v after the plugin %s", time.Since(start), mode)
			}
			if r.err != nil || r.id != hooked {
				t.Fatalf("CreateContainer = %s, %v; want %s created without the plugin", r.id, r.err, hooked)
			}
			if !strings.Contains(e.d.Output(), "closing plugin") {
				t.Errorf("daemon log does not say the plugin was dropped")
			}
			// The plugin is gone: the next create does not wait for it.
			start = time.Now()
			id := e.run(t, e.config("second", "sleep 1000"))
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("create and start after the plugin was dropped took %v", took)
			}
			if n := len(slices.DeleteFunc(p.read(t), func(x nriEvent) bool { return x.Container != id })); n != 0 {
				t.Errorf("dropped plugin got %d events of a later container", n)
			}
			e.remove(t, id)
			e.remove(t, r.id)
		})
	}
}

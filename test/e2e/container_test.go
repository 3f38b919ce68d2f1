package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/test/e2e/framework"
)

// ctrInfo is the part of ContainerStatus' verbose info the tests read.
type ctrInfo struct {
	Pid         int    `json:"pid"`
	ConmonPid   int    `json:"conmonPid"`
	Bundle      string `json:"bundle"`
	CgroupsPath string `json:"cgroupsPath"`
	Handler     string `json:"runtimeHandler"`
}

// ctrEnv is a daemon with busybox pulled and one running pod.
type ctrEnv struct {
	d     *framework.Daemon
	reg   *framework.Registry
	image string
	pod   string
	podCf *runtime.PodSandboxConfig
}

func newCtrEnv(t *testing.T, opts ...framework.Option) *ctrEnv {
	t.Helper()
	d := framework.StartDaemon(t, opts...)
	reg := framework.StartRegistry(t)
	e := &ctrEnv{d: d, reg: reg, image: d.PullBusybox(t, reg)}
	e.podCf = d.PodConfig(t, "ctr")
	resp, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: e.podCf})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	e.pod = resp.PodSandboxId
	t.Cleanup(func() {
		ctx := framework.Ctx(t)
		_, _ = d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: e.pod})
		_, _ = d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: e.pod})
	})
	return e
}

// config is a busybox container running script with sh.
func (e *ctrEnv) config(name, script string) *runtime.ContainerConfig {
	return framework.ContainerConfig(e.image, name, script)
}

func (e *ctrEnv) create(t *testing.T, cfg *runtime.ContainerConfig) string {
	t.Helper()
	resp, err := e.d.Runtime.CreateContainer(framework.Ctx(t), &runtime.CreateContainerRequest{
		PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCf,
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.ContainerId
}

func (e *ctrEnv) start(t *testing.T, id string) {
	t.Helper()
	if _, err := e.d.Runtime.StartContainer(framework.Ctx(t), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
}

func (e *ctrEnv) run(t *testing.T, cfg *runtime.ContainerConfig) string {
	t.Helper()
	id, err := e.d.CreateStart(framework.Ctx(t), e.pod, e.podCf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *ctrEnv) status(t *testing.T, id string) (*runtime.ContainerStatus, ctrInfo) {
	t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(framework.Ctx(t), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	var info ctrInfo
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatalf("verbose info %q: %v", resp.Info["info"], err)
	}
	return resp.Status, info
}

// exitRecorded tells whether conmon has written the container's exit
// file, which the daemon reads even if it was down at the exit.
func (e *ctrEnv) exitRecorded(id string) bool {
	_, err := os.Stat(filepath.Join(e.d.State, "exits", id))
	return err == nil
}

// waitExit waits for the container to exit and returns its status.
func (e *ctrEnv) waitExit(t *testing.T, id string, timeout time.Duration) *runtime.ContainerStatus {
	t.Helper()
	var st *runtime.ContainerStatus
	if !framework.Poll(timeout, func() bool {
		st, _ = e.status(t, id)
		return st.State == runtime.ContainerState_CONTAINER_EXITED
	}) {
		t.Fatalf("container %s still %s after %v", id, st.State, timeout)
	}
	return st
}

// logLines returns the message of each CRI log line, checking the format.
func (e *ctrEnv) logLines(t *testing.T, name string) []string {
	t.Helper()
	return e.logLinesIn(t, e.podCf.LogDirectory, filepath.Join(name, "0.log"))
}

// logLinesIn is logLines for a container of another pod.
func (e *ctrEnv) logLinesIn(t *testing.T, logDir, logPath string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(logDir, logPath))
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	var out []string
	if len(b) == 0 {
		return nil
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 3 {
			t.Fatalf("log line %q is not <time> <stream> <tag> <msg>", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("log line %q: timestamp: %v", line, err)
		}
		if f[1] != "stdout" && f[1] != "stderr" || f[2] != "F" && f[2] != "P" {
			t.Errorf("log line %q: bad stream or tag", line)
		}
		msg := ""
		if len(f) == 4 {
			msg = f[3]
		}
		out = append(out, f[1]+" "+f[2]+" "+msg)
	}
	return out
}

func (e *ctrEnv) remove(t *testing.T, id string) {
	t.Helper()
	for range 2 { // idempotent
		if _, err := e.d.Runtime.RemoveContainer(framework.Ctx(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("RemoveContainer: %v", err)
		}
	}
}

// assertContainerGone checks that nothing of a removed container remains.
func (e *ctrEnv) assertContainerGone(t *testing.T, id string, info ctrInfo) {
	t.Helper()
	_, err := e.d.Runtime.ContainerStatus(framework.Ctx(t), &runtime.ContainerStatusRequest{ContainerId: id})
	if status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStatus after remove: %v, want NotFound", err)
	}
	e.d.WaitRemovals(t)
	mounts, err := framework.MountsUnder(e.d.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if strings.Contains(m, id) {
			t.Errorf("mount %s left after remove", m)
		}
	}
	for _, p := range []string{info.Bundle, filepath.Join(e.d.Root, "containers", id+".json"), filepath.Join(e.d.Root, "containers", id), filepath.Join(e.d.Root, "overlay2", id), filepath.Join(e.d.State, "exits", id)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after remove", p)
		}
	}
	if info.ConmonPid > 0 && !framework.Poll(5*time.Second, func() bool { return !procIs(info.ConmonPid, "conmon") }) {
		t.Errorf("conmon %d still running after remove", info.ConmonPid)
	}
	if dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", info.CgroupsPath)); info.CgroupsPath != "" && len(dirs) > 0 {
		t.Errorf("cgroups left after remove: %v", dirs)
	}
}

func TestContainerLifecycle(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)

	cfg := e.config("exit3", `echo out-line; echo err-line >&2; exit 3`)
	id := e.create(t, cfg)
	st, info := e.status(t, id)
	if st.State != runtime.ContainerState_CONTAINER_CREATED || st.CreatedAt == 0 || st.StartedAt != 0 {
		t.Errorf("after create: state %v created %d started %d", st.State, st.CreatedAt, st.StartedAt)
	}
	if info.ConmonPid == 0 || info.Pid == 0 {
		t.Errorf("no conmon or container pid after create: %+v", info)
	}
	// A default pod's container names the handler that runs it.
	rs, err := e.d.Runtime.Status(ctx, &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := rs.Info["defaultRuntimeHandler"]; info.Handler != want || want == "" {
		t.Errorf("container's runtime handler %q, want the default %q", info.Handler, want)
	}
	if pinned := os.Getenv(framework.DefaultHandlerEnv); pinned != "" && info.Handler != pinned {
		t.Errorf("container's runtime handler %q, want %q from %s", info.Handler, pinned, framework.DefaultHandlerEnv)
	}
	e.start(t, id)
	if _, err := e.d.Runtime.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second StartContainer: %v, want FailedPrecondition", err)
	}
	st = e.waitExit(t, id, 30*time.Second)
	if st.ExitCode != 3 || st.Reason != "Error" || st.StartedAt == 0 || st.FinishedAt < st.StartedAt {
		t.Errorf("exited status: code %d reason %q started %d finished %d", st.ExitCode, st.Reason, st.StartedAt, st.FinishedAt)
	}
	wantLog := filepath.Join(e.podCf.LogDirectory, "exit3", "0.log")
	if st.LogPath != wantLog {
		t.Errorf("log path %q, want %q", st.LogPath, wantLog)
	}
	lines := strings.Join(e.logLines(t, "exit3"), "\n")
	for _, want := range []string{"stdout F out-line", "stderr F err-line"} {
		if !strings.Contains(lines, want) {
			t.Errorf("log lacks %q:\n%s", want, lines)
		}
	}
	img, err := e.d.Image.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: e.image}})
	if err != nil {
		t.Fatal(err)
	}
	if st.ImageId != img.Image.Id || st.Image.GetImage() != e.image ||
		(st.ImageRef != img.Image.Id && !slices.Contains(img.Image.RepoDigests, st.ImageRef)) {
		t.Errorf("image %q ref %q id %q do not agree with ImageStatus %+v", st.Image.GetImage(), st.ImageRef, st.ImageId, img.Image)
	}

	ok := e.run(t, e.config("ok", `echo done`))
	if st := e.waitExit(t, ok, 30*time.Second); st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("exit 0: code %d reason %q", st.ExitCode, st.Reason)
	}
	running := e.run(t, e.config("sleeper", `exec sleep 600`))

	// List filters: pod, state, labels, ID prefix.
	list := func(f *runtime.ContainerFilter) []string {
		resp, err := e.d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range resp.Containers {
			ids = append(ids, c.Id)
		}
		return ids
	}
	if got := list(&runtime.ContainerFilter{PodSandboxId: e.pod}); len(got) != 3 {
		t.Errorf("pod filter: %d containers, want 3", len(got))
	}
	if got := list(&runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}}); len(got) != 1 || got[0] != running {
		t.Errorf("running filter: %v, want [%s]", got, running)
	}
	if got := list(&runtime.ContainerFilter{LabelSelector: map[string]string{"name": "ok"}}); len(got) != 1 || got[0] != ok {
		t.Errorf("label filter: %v, want [%s]", got, ok)
	}
	if got := list(&runtime.ContainerFilter{Id: id[:12]}); len(got) != 1 || got[0] != id {
		t.Errorf("ID prefix filter: %v, want [%s]", got, id)
	}
	if got := list(&runtime.ContainerFilter{PodSandboxId: "nope"}); len(got) != 0 {
		t.Errorf("unknown pod filter: %v", got)
	}

	// Stop and remove are idempotent and succeed for unknown IDs.
	for range 2 {
		if _, err := e.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: running, Timeout: 10}); err != nil {
			t.Fatalf("StopContainer: %v", err)
		}
	}
	if st, _ := e.status(t, running); st.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("after stop: %v", st.State)
	}
	for _, c := range []string{id, ok, running} {
		_, info := e.status(t, c)
		e.remove(t, c)
		e.assertContainerGone(t, c, info)
	}
	if _, err := e.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: "0123456789abcdef"}); err != nil {
		t.Errorf("StopContainer of an unknown ID: %v", err)
	}
	if _, err := e.d.Runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: "0123456789abcdef"}); err != nil {
		t.Errorf("RemoveContainer of an unknown ID: %v", err)
	}
}

func TestContainerStopEscalatesToKill(t *testing.T) {
	e := newCtrEnv(t)
	cfg := e.config("stubborn", `trap "" TERM; echo ready; while true; do sleep 1; done`)
	id := e.run(t, cfg)
	eventually(t, "the container's ready line", func() bool {
		b, _ := os.ReadFile(filepath.Join(e.podCf.LogDirectory, "stubborn", "0.log"))
		return strings.Contains(string(b), "ready")
	})
	start := time.Now()
	if _, err := e.d.Runtime.StopContainer(framework.Ctx(t), &runtime.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*time.Second || d > 20*time.Second {
		t.Errorf("stop took %v, want the 2s timeout then a kill", d)
	}
	st, _ := e.status(t, id)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 || st.Reason != "Error" {
		t.Errorf("after stop: state %v code %d reason %q", st.State, st.ExitCode, st.Reason)
	}
}

func TestContainerOOMKilled(t *testing.T) {
	e := newCtrEnv(t)
	cfg := e.config("oom", `sleep 0.5; tail /dev/zero`)
	cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}
	id := e.run(t, cfg)
	st := e.waitExit(t, id, time.Minute)
	if st.ExitCode != 137 || st.Reason != "OOMKilled" {
		t.Errorf("OOM: code %d reason %q, want 137 OOMKilled", st.ExitCode, st.Reason)
	}
	if st.Resources.GetLinux().GetMemoryLimitInBytes() != 32<<20 {
		t.Errorf("status resources %v", st.Resources)
	}
}

// TestContainerImageConfigAndSecurity runs an image whose config sets the
// entrypoint, cmd, env, working dir and user, and checks them from inside,
// with a read-only rootfs and run_as_user overriding the image's user.
func TestContainerImageConfigAndSecurity(t *testing.T) {
	e := newCtrEnv(t)
	img := framework.BusyboxImage(t)
	img.Config.Entrypoint = []string{"sh", "-c"}
	img.Config.Cmd = []string{`echo "args-from-image user=$(id -u):$(id -g) cwd=$(pwd) env=$FROM_IMAGE$FROM_CRI"; touch /tmp/rootfs-file 2>/dev/null && echo ROOTFS-RW || echo ROOTFS-RO`}
	img.Config.Env = append(img.Config.Env, "FROM_IMAGE=img")
	img.Config.WorkingDir = "/www"
	img.Config.User = "app"
	e.reg.Push(t, "configured", "v1", img)
	ref := e.reg.Ref("configured", "v1")
	if _, err := e.d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}

	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "imgcfg"},
		Image:    &runtime.ImageSpec{Image: ref},
		Envs:     []*runtime.KeyValue{{Key: "FROM_CRI", Value: []byte("cri")}},
		LogPath:  "imgcfg/0.log",
		Linux:    &runtime.LinuxContainerConfig{},
	}
	id := e.run(t, cfg)
	st := e.waitExit(t, id, 30*time.Second)
	out := strings.Join(e.logLines(t, "imgcfg"), "\n")
	for _, want := range []string{"args-from-image user=1000:1000 cwd=/www env=imgcri", "ROOTFS-RW"} {
		if !strings.Contains(out, want) {
			t.Errorf("image config: log lacks %q:\n%s", want, out)
		}
	}
	if u := st.GetUser().GetLinux(); u.GetUid() != 1000 || u.GetGid() != 1000 {
		t.Errorf("status user %v, want 1000:1000", u)
	}

	sec := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "secured"},
		Image:    &runtime.ImageSpec{Image: ref},
		Args:     []string{`echo "user=$(id -u):$(id -g) groups=$(id -G)"; touch /tmp/rootfs-file 2>/dev/null && echo ROOTFS-RW || echo ROOTFS-RO`},
		LogPath:  "secured/0.log",
		Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			RunAsUser: &runtime.Int64Value{Value: 4242}, RunAsGroup: &runtime.Int64Value{Value: 4343},
			ReadonlyRootfs: true,
		}},
	}
	id = e.run(t, sec)
	e.waitExit(t, id, 30*time.Second)
	out = strings.Join(e.logLines(t, "secured"), "\n")
	for _, want := range []string{"user=4242:4343", "ROOTFS-RO"} {
		if !strings.Contains(out, want) {
			t.Errorf("security context: log lacks %q:\n%s", want, out)
		}
	}
}

// TestContainerRefusesBadInput checks the refusals and that they leave
// nothing behind.
func TestContainerRefusesBadInput(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)
	create := func(cfg *runtime.ContainerConfig, pod string) error {
		_, err := e.d.Runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: e.podCf})
		return err
	}
	traversal := e.config("trav", "true")
	traversal.LogPath = "../../escape.log"
	missingMount := e.config("mnt", "true")
	missingMount.Mounts = []*runtime.Mount{{HostPath: "/no/such/dir", ContainerPath: "/x"}}
	badCap := e.config("cap", "true")
	badCap.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"NOT_A_CAP"}}}
	noImage := e.config("noimg", "true")
	noImage.Image.Image = e.reg.Ref("missing", "v1")
	for _, tc := range []struct {
		name string
		cfg  *runtime.ContainerConfig
		pod  string
		code codes.Code
	}{
		{"nil config", nil, e.pod, codes.InvalidArgument},
		{"log path traversal", traversal, e.pod, codes.InvalidArgument},
		{"missing mount source", missingMount, e.pod, codes.InvalidArgument},
		{"unknown capability", badCap, e.pod, codes.InvalidArgument},
		{"image not present", noImage, e.pod, codes.NotFound},
		{"unknown pod", e.config("nopod", "true"), "0123456789abcdef", codes.NotFound},
	} {
		if err := create(tc.cfg, tc.pod); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	resp, err := e.d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil || len(resp.Containers) != 0 {
		t.Errorf("refused creates left containers: %v %v", resp.GetContainers(), err)
	}
	entries, _ := os.ReadDir(filepath.Join(e.d.Root, "containers"))
	overlay, _ := filepath.Glob(filepath.Join(e.d.Root, "overlay2", "[0-9a-f]*", "merged"))
	if len(entries) != 0 || len(overlay) != 0 {
		t.Errorf("refused creates left records %v or rootfs %v", entries, overlay)
	}
	// A retried create with the same name gets the first call's container.
	cfg := e.config("retry", "sleep 60")
	first := e.create(t, cfg)
	if again := e.create(t, cfg); again != first {
		t.Errorf("retried create returned %s, want %s", again, first)
	}
	// A created container that never started stops at once, whatever the timeout.
	start := time.Now()
	if _, err := e.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: first, Timeout: 30}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stopping a created container took %v", d)
	}
	if st, _ := e.status(t, first); st.State != runtime.ContainerState_CONTAINER_EXITED || st.StartedAt != 0 {
		t.Errorf("stopped created container: %v started %d", st.State, st.StartedAt)
	}
	// A create whose caller times out, then its retry, leave exactly one
	// container of that name (the daemon finishes the first and hands it out).
	slow := e.config("timedout", "sleep 60")
	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	_, err = e.d.Runtime.CreateContainer(short, &runtime.CreateContainerRequest{PodSandboxId: e.pod, Config: slow, SandboxConfig: e.podCf})
	cancel()
	if err == nil {
		t.Log("create finished within 5ms; the timeout path was not exercised")
	}
	retried := e.create(t, slow)
	resp, err = e.d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"name": "timedout"}}})
	if err != nil || len(resp.Containers) != 1 || resp.Containers[0].Id != retried {
		t.Errorf("after a timed-out create and its retry: %v %v, want only %s", resp.GetContainers(), err, retried)
	}
}

// TestContainerStats: container, pod and list stats report the cgroup's
// CPU and memory and the writable layer, as the refresher samples them.
func TestContainerStats(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)
	id := e.run(t, e.config("busy", busyScript))

	// The CPU rate needs two samples: the background refresher takes one
	// every few seconds.
	var cs *runtime.ContainerStats
	framework.Poll(20*time.Second, func() bool {
		resp, err := e.d.Runtime.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		cs = resp.Stats
		return cs.GetCpu().GetUsageNanoCores().GetValue() > 0 && cs.GetWritableLayer().GetUsedBytes().GetValue() >= 8<<20
	})
	if cs.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || cs.GetCpu().GetUsageNanoCores().GetValue() == 0 ||
		cs.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("container stats cpu %v memory %v, want non-zero", cs.GetCpu(), cs.GetMemory())
	}
	if cs.GetWritableLayer().GetUsedBytes().GetValue() < 8<<20 {
		t.Errorf("writable layer %v, want at least 8 MiB", cs.GetWritableLayer())
	}
	list, err := e.d.Runtime.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: &runtime.ContainerStatsFilter{PodSandboxId: e.pod}})
	if err != nil || len(list.Stats) != 1 {
		t.Errorf("ListContainerStats: %v %v", list.GetStats(), err)
	}
	ps, err := e.d.Runtime.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: e.pod})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Stats.GetLinux().GetContainers()) != 1 || ps.Stats.GetLinux().GetNetwork().GetDefaultInterface() == nil {
		t.Errorf("pod stats: %v", ps.Stats)
	}
	if lp, err := e.d.Runtime.ListPodSandboxStats(ctx, &runtime.ListPodSandboxStatsRequest{}); err != nil || len(lp.Stats) != 1 {
		t.Errorf("ListPodSandboxStats: %v %v", lp.GetStats(), err)
	}
}

// busyScript writes 8 MiB into the writable layer, then burns CPU and logs.
const busyScript = `dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null; while true; do echo tick; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; done`

// TestContainerUpdateResources: UpdateContainerResources changes the live
// cgroup and the status.
func TestContainerUpdateResources(t *testing.T) {
	e := newCtrEnv(t)
	id := e.run(t, e.config("busy", busyScript))
	_, info := e.status(t, id)
	if _, err := e.d.Runtime.UpdateContainerResources(framework.Ctx(t), &runtime.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: 256, MemoryLimitInBytes: 96 << 20},
	}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"memory/memory.limit_in_bytes": fmt.Sprint(96 << 20), "cpu/cpu.shares": "256"} {
		dir, name := filepath.Split(file)
		b, err := os.ReadFile(filepath.Join(cgroups.Root, dir, info.CgroupsPath, name))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s after update: %q (%v), want %s", file, b, err, want)
		}
	}
	if st, _ := e.status(t, id); st.Resources.GetLinux().GetCpuShares() != 256 {
		t.Errorf("status resources after update: %v", st.Resources)
	}
}

// TestContainerLogReopen: the kubelet rotates a log by renaming it, then
// asks for a reopen; output goes on in a new file.
func TestContainerLogReopen(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)
	id := e.run(t, e.config("busy", busyScript))
	logPath := filepath.Join(e.podCf.LogDirectory, "busy", "0.log")
	eventually(t, "the first log line", func() bool { _, err := os.Stat(logPath); return err == nil })
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "output in the reopened log", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "tick")
	})
	e.remove(t, id)
	if _, err := e.d.Runtime.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("ReopenContainerLog after remove: %v, want NotFound", err)
	}
}

// TestContainerEvents: a subscriber sees created, started, stopped and
// deleted, in order, each with its pod's status.
func TestContainerEvents(t *testing.T) {
	e := newCtrEnv(t)
	evCtx, cancel := context.WithCancel(framework.Ctx(t))
	defer cancel()
	events, err := e.d.Runtime.GetContainerEvents(evCtx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The header comes once the subscription is registered.
	if _, err := events.Header(); err != nil {
		t.Fatal(err)
	}
	got := make(chan *runtime.ContainerEventResponse, 16)
	go func() {
		defer close(got)
		for {
			ev, err := events.Recv()
			if err != nil {
				return
			}
			got <- ev
		}
	}()

	id := e.run(t, e.config("short", `exit 0`))
	e.waitExit(t, id, 30*time.Second)
	e.remove(t, id)
	want := []runtime.ContainerEventType{
		runtime.ContainerEventType_CONTAINER_CREATED_EVENT, runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, runtime.ContainerEventType_CONTAINER_DELETED_EVENT,
	}
	timeout := time.After(10 * time.Second)
	for _, w := range want {
		select {
		case ev, ok := <-got:
			if !ok {
				t.Fatalf("event stream ended before %v", w)
			}
			if ev.ContainerId != id || ev.ContainerEventType != w {
				t.Errorf("event %v for %s, want %v", ev.ContainerEventType, ev.ContainerId, w)
			}
			if ev.PodSandboxStatus.GetId() != e.pod {
				t.Errorf("event %v without its pod status", ev.ContainerEventType)
			}
		case <-timeout:
			t.Fatalf("no %v event", w)
		}
	}
}

// TestPodRemovalRemovesContainers: StopPodSandbox stops the pod's
// containers and RemovePodSandbox removes them, leaving nothing.
func TestPodRemovalRemovesContainers(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)
	id := e.run(t, e.config("inpod", `exec sleep 600`))
	_, info := e.status(t, id)
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.status(t, id); st.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("after StopPodSandbox the container is %v", st.State)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	e.assertContainerGone(t, id, info)
}

// TestContainersSurviveDaemonRestart: conmon keeps containers running
// while the daemon is down; an exit meanwhile is picked up at start.
func TestContainersSurviveDaemonRestart(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)
	long := e.run(t, e.config("long", `exec sleep 600`))
	short := e.run(t, e.config("short", `sleep 2; exit 7`))
	created := e.create(t, e.config("created", `echo late`))
	_, info := e.status(t, long)
	e.d.Stop(t)
	eventually(t, `"short" to exit while the daemon is down`, func() bool { return e.exitRecorded(short) })
	if !procIs(info.ConmonPid, "conmon") {
		t.Fatal("conmon did not outlive the daemon")
	}
	e.d.Start(t)
	if st, _ := e.status(t, long); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("long-running container after restart: %v", st.State)
	}
	if st, _ := e.status(t, short); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 {
		t.Errorf("container that exited meanwhile: %v code %d", st.State, st.ExitCode)
	}
	e.start(t, created)
	if st := e.waitExit(t, created, 30*time.Second); st.ExitCode != 0 {
		t.Errorf("container created before the restart: code %d", st.ExitCode)
	}
	if _, err := e.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: long, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{long, short, created} {
		_, info := e.status(t, id)
		e.remove(t, id)
		e.assertContainerGone(t, id, info)
	}
}

// TestContainerRuntimeHandlers: a pod's runtime handler runs its
// containers and applies their resources, a hugepage limit included, on
// the cgroup v1 hierarchies of this hybrid host.
func TestContainerRuntimeHandlers(t *testing.T) {
	e := newCtrEnv(t)
	for _, handler := range []string{"runc", "crun"} {
		t.Run(handler, func(t *testing.T) {
			if held := cgroups.HybridUnifiedControllers("/sys/fs/cgroup"); handler == "crun" && len(held) > 0 {
				framework.Unsupported(t, "crun refuses hybrid cgroup hosts whose cgroup2 hierarchy holds controllers (%v here); hack/hybrid-cgroups.sh mounts them as v1", held)
			}
			e.checkHandlerResources(t, handler)
		})
	}
}

func (e *ctrEnv) checkHandlerResources(t *testing.T, handler string) {
	ctx := framework.Ctx(t)
	cf := e.d.PodConfig(t, handler+"pod")
	resp, err := e.d.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cf, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox with %s: %v", handler, err)
	}
	pod := resp.PodSandboxId
	t.Cleanup(func() {
		_, _ = e.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
		_, _ = e.d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
	})
	// In a v1 container the runtime mounts the container's own cgroup at
	// /sys/fs/cgroup/<controller>.
	cfg := e.config("on"+handler, `cd /sys/fs/cgroup
echo "memory=$(cat memory/memory.limit_in_bytes) shares=$(cat cpu/cpu.shares) huge=$(cat hugetlb/hugetlb.2MB.limit_in_bytes)"`)
	cfg.Linux.Resources = &runtime.LinuxContainerResources{
		CpuShares: 512, MemoryLimitInBytes: 64 << 20,
		HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
	}
	cr, err := e.d.Runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: cf})
	if err != nil {
		t.Fatalf("CreateContainer on %s: %v", handler, err)
	}
	e.start(t, cr.ContainerId)
	if st := e.waitExit(t, cr.ContainerId, 30*time.Second); st.ExitCode != 0 {
		t.Errorf("%s container exit code %d", handler, st.ExitCode)
	}
	got := strings.Join(e.logLinesIn(t, cf.LogDirectory, cfg.LogPath), "\n")
	if want := fmt.Sprintf("stdout F memory=%d shares=512 huge=%d", 64<<20, 4<<20); got != want {
		t.Errorf("%s container saw %q, want %q", handler, got, want)
	}
	_, info := e.status(t, cr.ContainerId)
	var verbose struct {
		Handler string `json:"runtimeHandler"`
	}
	r, err := e.d.Runtime.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: cr.ContainerId, Verbose: true})
	if err != nil || json.Unmarshal([]byte(r.Info["info"]), &verbose) != nil || verbose.Handler != handler {
		t.Errorf("verbose info handler %q, want %q (%v)", verbose.Handler, handler, err)
	}
	e.remove(t, cr.ContainerId)
	e.assertContainerGone(t, cr.ContainerId, info)
}

// TestContainerLogLimitsAndTTY: [runtime] log_size_max caps the log file,
// and a TTY container's output is logged as stdout.
func TestContainerLogLimitsAndTTY(t *testing.T) {
	e := newCtrEnv(t, framework.WithConfig("[runtime]\nlog_size_max = 8192\n"))
	id := e.run(t, e.config("chatty", `i=0; while [ $i -lt 2000 ]; do echo "line $i of a chatty container"; i=$((i+1)); done`))
	e.waitExit(t, id, 30*time.Second)
	fi, err := os.Stat(filepath.Join(e.podCf.LogDirectory, "chatty", "0.log"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 8192+4096 {
		t.Errorf("log file is %d bytes with log_size_max 8192", fi.Size())
	}

	cfg := e.config("tty", `echo "tty=$(tty)"`)
	cfg.Tty = true
	id = e.run(t, cfg)
	e.waitExit(t, id, 30*time.Second)
	out := strings.Join(e.logLines(t, "tty"), "\n")
	if !strings.Contains(out, "stdout F tty=/dev/pts/0") {
		t.Errorf("tty container log:\n%s", out)
	}
}

// TestContainerImageVolumes: with image_volumes = "bind" an image volume is
// a per-container host directory, removed with the container.
func TestContainerImageVolumes(t *testing.T) {
	e := newCtrEnv(t, framework.WithConfig("[runtime]\nimage_volumes = \"bind\"\n"))
	img := framework.BusyboxImage(t)
	img.Config.Volumes = map[string]struct{}{"/data": {}}
	e.reg.Push(t, "withvolume", "v1", img)
	ref := e.reg.Ref("withvolume", "v1")
	if _, err := e.d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("vol", `echo in-volume > /data/file && grep -q " /data " /proc/mounts && echo VOLUME-MOUNTED`)
	cfg.Image.Image = ref
	id := e.run(t, cfg)
	if st := e.waitExit(t, id, 30*time.Second); st.ExitCode != 0 {
		t.Fatalf("exit code %d: %v", st.ExitCode, e.logLines(t, "vol"))
	}
	if out := strings.Join(e.logLines(t, "vol"), "\n"); !strings.Contains(out, "VOLUME-MOUNTED") {
		t.Errorf("/data is not a mount:\n%s", out)
	}
	files, _ := filepath.Glob(filepath.Join(e.d.Root, "containers", id, "volumes", "*", "file"))
	if len(files) != 1 {
		t.Fatalf("volume file on the host: %v", files)
	}
	if b, _ := os.ReadFile(files[0]); string(b) != "in-volume\n" {
		t.Errorf("volume file holds %q", b)
	}
	_, info := e.status(t, id)
	e.remove(t, id)
	e.assertContainerGone(t, id, info)
}

// TestContainerSpecOptions checks from inside a container what the CRI
// config asked for: mounts, the pod's hostname and files, capabilities,
// no_new_privs, supplemental groups, privileged mode.
func TestContainerSpecOptions(t *testing.T) {
	e := newCtrEnv(t)
	roDir, rwDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(roDir, "hello"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("opts", `cat /ro/hello; touch /ro/x 2>/dev/null && echo RO-WRITABLE || echo RO-OK
echo written > /rw/out && echo RW-OK
echo "hostname=$(hostname)"; grep -c nameserver /etc/resolv.conf >/dev/null && echo RESOLV-OK
grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; id`)
	cfg.Mounts = []*runtime.Mount{
		{HostPath: roDir, ContainerPath: "/ro", Readonly: true},
		{HostPath: rwDir, ContainerPath: "/rw"},
	}
	cfg.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{
		NoNewPrivs:         true,
		SupplementalGroups: []int64{4000},
		Capabilities:       &runtime.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"CHOWN"}},
	}
	id := e.run(t, cfg)
	st := e.waitExit(t, id, 30*time.Second)
	out := strings.Join(e.logLines(t, "opts"), "\n")
	for _, want := range []string{"from-host", "RO-OK", "RW-OK", "hostname=ctr", "RESOLV-OK",
		"CapEff:\t0000000000000001", "NoNewPrivs:\t1", "groups=0(root),4000"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(rwDir, "out")); err != nil || string(b) != "written\n" {
		t.Errorf("rw mount write not visible on the host: %q %v", b, err)
	}
	if !slices.Contains(st.GetUser().GetLinux().GetSupplementalGroups(), 4000) {
		t.Errorf("status supplemental groups %v lack 4000", st.GetUser().GetLinux().GetSupplementalGroups())
	}
	if len(st.Mounts) != 2 {
		t.Errorf("status mounts %v", st.Mounts)
	}

	priv := e.config("priv", `grep CapEff /proc/self/status; ls /dev/loop-control >/dev/null 2>&1 && echo DEVICES-OK`)
	priv.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{Privileged: true}
	id = e.run(t, priv)
	e.waitExit(t, id, 30*time.Second)
	out = strings.Join(e.logLines(t, "priv"), "\n")
	if strings.Contains(out, "CapEff:\t0000000000000000") || !strings.Contains(out, "DEVICES-OK") {
		t.Errorf("privileged container:\n%s", out)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestOrphanContainerRemovedAtStart: a container whose record is gone (a
// crash in the middle of a remove) is deleted when the daemon starts.
func TestOrphanContainerRemovedAtStart(t *testing.T) {
	e := newCtrEnv(t)
	id := e.run(t, e.config("orphan", `exec sleep 600`))
	_, info := e.status(t, id)
	e.d.Stop(t)
	if err := os.Remove(filepath.Join(e.d.Root, "containers", id+".json")); err != nil {
		t.Fatal(err)
	}
	e.d.Start(t)
	if _, err := os.Stat(info.Bundle); !os.IsNotExist(err) {
		t.Errorf("orphan bundle %s still there: %v", info.Bundle, err)
	}
	e.d.WaitRemovals(t)
	if mounts, _ := framework.MountsUnder(e.d.Dir); len(mounts) > 0 {
		for _, m := range mounts {
			if strings.Contains(m, id) {
				t.Errorf("orphan rootfs still mounted: %s", m)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(e.d.Root, "overlay2", id)); !os.IsNotExist(err) {
		t.Errorf("orphan writable layer still there: %v", err)
	}
	if !framework.Poll(5*time.Second, func() bool { return !procIs(info.ConmonPid, "conmon") && !procIs(info.Pid, "sleep") }) {
		t.Fatal("orphan container still running")
	}
}

// TestContainerReleasedFromRuntimeAtExit: once an exit is recorded the
// daemon deletes the container from its OCI runtime (state, cgroup,
// bundle, conmon), in the background for a container that ended by itself
// and within StopContainer for a stopped one, and keeps the exit and the
// log; RemoveContainer afterwards still removes the rest.
func TestContainerReleasedFromRuntimeAtExit(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)
	released := func(info ctrInfo, id string) []string {
		var left []string
		for _, p := range []string{info.Bundle, filepath.Join(e.d.State, info.Handler, id), filepath.Join(e.d.State, "exits", id)} {
			if _, err := os.Lstat(p); !os.IsNotExist(err) {
				left = append(left, p)
			}
		}
		if dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", info.CgroupsPath)); len(dirs) > 0 {
			left = append(left, dirs...)
		}
		return left
	}
	conmonGone := func(info ctrInfo) {
		t.Helper()
		if !framework.Poll(5*time.Second, func() bool { return !procIs(info.ConmonPid, "conmon") }) {
			t.Errorf("conmon %d still running after the exit", info.ConmonPid)
		}
	}

	byItself := e.run(t, e.config("bye", `echo bye; exit 2`))
	_, info := e.status(t, byItself)
	if info.CgroupsPath == "" || info.Handler == "" {
		t.Fatalf("verbose status lacks cgroup or handler: %+v", info)
	}
	e.waitExit(t, byItself, 30*time.Second)
	var left []string
	if !framework.Poll(10*time.Second, func() bool { left = released(info, byItself); return len(left) == 0 }) {
		t.Errorf("runtime's part of an exited container still there: %v", left)
	}
	conmonGone(info)
	checkKept := func() {
		t.Helper()
		st, _ := e.status(t, byItself)
		if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 2 || st.Reason != "Error" {
			t.Errorf("released container: state %v code %d reason %q, want EXITED 2 Error", st.State, st.ExitCode, st.Reason)
		}
		if lines := strings.Join(e.logLines(t, "bye"), "\n"); !strings.Contains(lines, "stdout F bye") {
			t.Errorf("log of the released container lacks its line:\n%s", lines)
		}
	}
	checkKept()
	e.d.Stop(t)
	e.d.Start(t)
	checkKept()

	stopped := e.run(t, e.config("sleeper", `exec sleep 600`))
	_, info2 := e.status(t, stopped)
	if _, err := e.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: stopped, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	// No poll: StopContainer returns with the runtime done, as containerd's.
	if left := released(info2, stopped); len(left) > 0 {
		t.Errorf("after StopContainer the runtime's part is still there: %v", left)
	}
	conmonGone(info2)
	for id, inf := range map[string]ctrInfo{byItself: info, stopped: info2} {
		e.remove(t, id)
		e.assertContainerGone(t, id, inf)
	}
}

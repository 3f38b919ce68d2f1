package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// ctrInfo is the part of ContainerStatus' verbose info the tests read.
type ctrInfo struct {
	Pid         int    `json:"pid"`
	ConmonPid   int    `json:"conmonPid"`
	Bundle      string `json:"bundle"`
	CgroupsPath string `json:"cgroupsPath"`
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
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: e.image},
		Command:  []string{"sh", "-c", script},
		LogPath:  name + "/0.log",
		Labels:   map[string]string{"name": name},
		Linux:    &runtime.LinuxContainerConfig{},
	}
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
	id := e.create(t, cfg)
	e.start(t, id)
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

// waitExit waits for the container to exit and returns its status.
func (e *ctrEnv) waitExit(t *testing.T, id string, timeout time.Duration) *runtime.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _ := e.status(t, id)
		if st.State == runtime.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %s after %v", id, st.State, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logLines returns the message of each CRI log line, checking the format.
func (e *ctrEnv) logLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.podCf.LogDirectory, name, "0.log"))
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	var out []string
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
	mounts, err := framework.MountsUnder(e.d.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if strings.Contains(m, id) {
			t.Errorf("mount %s left after remove", m)
		}
	}
	for _, p := range []string{info.Bundle, filepath.Join(e.d.Root, "containers", id), filepath.Join(e.d.Root, "overlay2", id), filepath.Join(e.d.State, "exits", id)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after remove", p)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for info.ConmonPid > 0 && processAlive(info.ConmonPid, "conmon") {
		if time.Now().After(deadline) {
			t.Errorf("conmon %d still running after remove", info.ConmonPid)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", info.CgroupsPath)); info.CgroupsPath != "" && len(dirs) > 0 {
		t.Errorf("cgroups left after remove: %v", dirs)
	}
}

func processAlive(pid int, comm string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(b)) == comm
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
		(st.ImageRef != img.Image.Id && !contains(img.Image.RepoDigests, st.ImageRef)) {
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

package oci

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/criserver/criserver/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// testRuntime returns a Runtime over a temp state dir whose default
// handler is runc, skipping where conmon and runc cannot run containers.
func testRuntime(t *testing.T) *Runtime {
	t.Helper()
	return testRuntimeWith(t, HandlerRunc)
}

// testRuntimeWith is testRuntime with handler as the default handler.
func testRuntimeWith(t *testing.T, handler string) *Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if testing.Short() {
		t.Skip("runs containers")
	}
	for _, bin := range []string{"conmon", handler} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	state := t.TempDir()
	cfg := DefaultConfig()
	cfg.DefaultHandler = handler
	cfg.FillDerived(state)
	if handler == HandlerCrun {
		if err := crunUsable(context.Background(), cfg, cgroups.Root); err != nil {
			t.Skip(err)
		}
	}
	r, err := NewRuntime(context.Background(), cfg, state, cgroups.Cgroupfs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// createTest generates a spec running script and creates it under conmon.
func createTest(t *testing.T, r *Runtime, script string, mutate func(*SpecInput)) (id, logPath, cgroupsPath string) {
	t.Helper()
	in, id := runInput(t)
	in.Config.Command = []string{"/bin/sh", "-c", script}
	if mutate != nil {
		mutate(&in)
	}
	res, err := GenerateSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(t.TempDir(), "c", "0.log")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pid, err := r.Create(ctx, CreateOptions{ID: id, Handler: "", Spec: res.Spec, LogPath: logPath})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if pid <= 0 {
		t.Fatalf("Create returned pid %d", pid)
	}
	t.Cleanup(func() { _ = r.Delete(context.Background(), "", id) })
	return id, logPath, res.Spec.Linux.CgroupsPath
}

func waitExited(t *testing.T, r *Runtime, id, cgroupsPath string) ExitStatus {
	t.Helper()
	if !r.waitExit(context.Background(), id, 30*time.Second) {
		t.Fatal("container did not exit")
	}
	st, ok, err := r.Exited(id, cgroupsPath)
	if err != nil || !ok {
		t.Fatalf("Exited = %v, %v", ok, err)
	}
	return st
}

func TestRuntimeLifecycle(t *testing.T) {
	r := testRuntime(t)
	ctx := context.Background()
	var mu sync.Mutex
	var exits []string
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := r.WatchExits(wctx, func(id string) { mu.Lock(); exits = append(exits, id); mu.Unlock() }); err != nil {
		t.Fatal(err)
	}

	id, logPath, cg := createTest(t, r, `echo out-line; echo err-line >&2; printf partial; exit 3`, nil)
	if _, ok, _ := r.Exited(id, cg); ok {
		t.Fatal("created container reported exited")
	}
	if attach, ctl := r.AttachPaths(id); !fileExists(attach) || !fileExists(ctl) {
		t.Errorf("attach socket %s or ctl fifo %s missing", attach, ctl)
	}
	if err := r.Start(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	st := waitExited(t, r, id, cg)
	if st.Code != 3 || st.OOMKilled || time.Since(st.FinishedAt) > time.Minute {
		t.Errorf("exit status = %+v, want code 3", st)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := map[string]bool{"stdout F out-line": false, "stderr F err-line": false, "stdout P partial": false}
	for _, l := range lines {
		f := strings.SplitN(l, " ", 2)
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("log line %q: bad timestamp: %v", l, err)
		}
		if len(f) == 2 {
			if _, ok := want[f[1]]; ok {
				want[f[1]] = true
			}
		}
	}
	for l, seen := range want {
		if !seen {
			t.Errorf("log lacks %q:\n%s", l, b)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(exits, ",")
		mu.Unlock()
		if strings.Contains(got, id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exit watcher did not report %s (got %q)", id, got)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := r.Delete(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "", id); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	for _, p := range []string{r.BundleDir(id), r.exitFile(id), filepath.Join(r.socketDir(), r.conmonUUID(id))} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind after Delete", p)
		}
	}
}

func TestRuntimeStopEscalates(t *testing.T) {
	r := testRuntime(t)
	ctx := context.Background()
	id, _, cg := createTest(t, r, `trap "" TERM; echo ready; while true; do sleep 1; done`, nil)
	if err := r.Start(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	conmon := r.ConmonPid(id)
	if conmon == 0 {
		t.Fatal("no conmon running")
	}
	time.Sleep(200 * time.Millisecond) // let the trap be set
	start := time.Now()
	if err := r.Stop(ctx, "", id, syscall.SIGTERM, time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("Stop returned after %v, before the timeout", d)
	}
	if st := waitExited(t, r, id, cg); st.Code != 137 {
		t.Errorf("exit code %d, want 137", st.Code)
	}
	if err := r.Stop(ctx, "", id, syscall.SIGTERM, time.Second); err != nil {
		t.Errorf("Stop of a stopped container: %v", err)
	}
	if err := r.Delete(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for isConmon(conmon) {
		if time.Now().After(deadline) {
			t.Fatal("conmon still running after Delete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", cg)); len(dirs) > 0 {
		t.Errorf("cgroup left after Delete: %v", dirs)
	}
}

func TestRuntimeOOMAndUpdate(t *testing.T) {
	r := testRuntime(t)
	ctx := context.Background()
	if !dirExists("/sys/fs/cgroup/memory") {
		t.Skip("no cgroup v1 memory controller")
	}
	id, _, cg := createTest(t, r, `sleep 1; echo go; tail /dev/zero`, func(in *SpecInput) {
		in.Config.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}
	})
	if err := r.Start(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	limit := int64(32 << 20)
	if err := r.UpdateResources(ctx, "", id, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", cg, "memory.limit_in_bytes"))
	if err != nil || strings.TrimSpace(string(b)) != "33554432" {
		t.Errorf("memory limit after update = %q, %v", b, err)
	}
	st := waitExited(t, r, id, cg)
	if st.Code != 137 || !st.OOMKilled {
		t.Errorf("exit status = %+v, want 137 OOM-killed", st)
	}
}

func TestRuntimeReopenLogAndErrors(t *testing.T) {
	r := testRuntime(t)
	ctx := context.Background()
	id, logPath, cg := createTest(t, r, `while true; do echo tick; sleep 0.1; done`, nil)
	if err := r.Start(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	st, err := cgroups.ReadStats(cg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUUsageNanos == 0 || st.MemoryUsage == 0 || st.MemoryWorkingSet > st.MemoryUsage || st.Pids == 0 {
		t.Errorf("cgroup stats of a running container: %+v", st)
	}
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := r.ReopenLog(ctx, id, logPath); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "stdout F tick") {
		t.Errorf("reopened log lacks output: %q", b)
	}
	if err := r.Stop(ctx, "", id, syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A broken spec fails Create with the runtime's message and leaves nothing.
	in, badID := runInput(t)
	in.Config.Command = []string{"/no/such/binary"}
	res, err := GenerateSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	res.Spec.Process.Cwd = "relative"
	if _, err := r.Create(ctx, CreateOptions{ID: badID, Spec: res.Spec}); err == nil {
		t.Fatal("Create with a bad spec succeeded")
	} else {
		t.Logf("Create error: %v", err)
	}
	if _, err := os.Stat(r.BundleDir(badID)); !os.IsNotExist(err) {
		t.Errorf("failed Create left its bundle")
	}
	if _, err := r.Create(ctx, CreateOptions{ID: badID, Handler: "nope", Spec: res.Spec}); err == nil {
		t.Error("Create with an unknown handler succeeded")
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

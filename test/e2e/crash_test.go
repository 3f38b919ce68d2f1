package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// crashEnv is the environment variable of the fault package.
const crashEnv = "CRISERVER_FAULT_CRASH"

// restartCrashing restarts the daemon with crash points armed.
func restartCrashing(t *testing.T, d *framework.Daemon, points string) {
	t.Helper()
	d.Stop(t)
	d.Env = []string{crashEnv + "=" + points}
	d.Start(t)
}

// expectCrash checks that an RPC failed because the daemon died, waits for
// it to be gone, and starts it again without crash points.
func expectCrash(t *testing.T, d *framework.Daemon, point string, err error) {
	t.Helper()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("%s: RPC returned %v, want Unavailable (daemon killed)", point, err)
	}
	if !framework.Poll(10*time.Second, func() bool { return !d.Running() }) {
		t.Fatalf("%s: daemon still running after the RPC failed", point)
	}
	if !strings.Contains(d.Output(), "fault: crashing at "+point) {
		t.Fatalf("%s: daemon did not die at the crash point:\n%s", point, d.Output())
	}
	d.Env = nil
	d.Start(t)
}

// crashObjectIDs returns the names of the pod and container entries the daemon
// keeps on disk: records, namespace pins, pod state, writable layers,
// bundles. Called after a crash, it names what the crash left half-made.
func crashObjectIDs(d *framework.Daemon) []string {
	var ids []string
	for _, dir := range []string{
		filepath.Join(d.Root, "pods"), filepath.Join(d.Root, "containers"), filepath.Join(d.State, "netns"),
		filepath.Join(d.State, "pods"), filepath.Join(d.State, "containers"),
	} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			// Records are <id>.json files; the other entries are named by the ID.
			id := strings.TrimSuffix(e.Name(), ".json")
			if len(id) == 64 && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// crashLayerDirs lists the committed layers (and anything else) in overlay2
// other than the short-link dir.
func crashLayerDirs(t *testing.T, d *framework.Daemon) []string {
	t.Helper()
	d.WaitRemovals(t)
	entries, err := os.ReadDir(filepath.Join(d.Root, "overlay2"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "l" {
			out = append(out, e.Name())
		}
	}
	return out
}

// assertNoLeaks checks that nothing of the objects named by ids is left on
// the host: no mount under the daemon's dirs, no file named after them, no
// cgroup, no conmon, no CNI address or cached result.
func assertNoLeaks(t *testing.T, d *framework.Daemon, ids ...string) {
	t.Helper()
	d.WaitRemovals(t)
	mentions := func(s string) bool {
		for _, id := range ids {
			if strings.Contains(s, id) {
				return true
			}
		}
		return false
	}
	for _, dir := range []string{d.Root, d.State} {
		mounts, err := framework.MountsUnder(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mounts {
			if mentions(m) {
				t.Errorf("mount left: %s", m)
			}
		}
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && mentions(e.Name()) {
				t.Errorf("left on disk: %s", p)
				if e.IsDir() {
					return filepath.SkipDir
				}
			}
			return nil
		})
	}
	for _, pat := range []string{"/sys/fs/cgroup/*/criserver", "/sys/fs/cgroup/unified/criserver"} {
		roots, _ := filepath.Glob(pat)
		for _, root := range roots {
			_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
				if err == nil && e.IsDir() && mentions(e.Name()) {
					t.Errorf("cgroup left: %s", p)
					return filepath.SkipDir
				}
				return nil
			})
		}
	}
	var left []string
	gone := framework.Poll(5*time.Second, func() bool {
		left = nil
		// Any process naming the objects (conmon, the infra process), and
		// any conmon of this daemon.
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			pid, err := strconv.Atoi(p.Name())
			if err != nil || pid == os.Getpid() || pid == d.Pid() {
				continue
			}
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			cmd := strings.ReplaceAll(string(b), "\x00", " ")
			if mentions(cmd) || procIs(pid, "conmon") && strings.Contains(cmd, d.Dir+"/") {
				left = append(left, cmd)
			}
		}
		return len(left) == 0
	})
	if !gone {
		t.Errorf("processes left: %q", left)
	}
	nets, _ := filepath.Glob("/var/lib/cni/networks/*/*")
	for _, p := range nets {
		if b, err := os.ReadFile(p); err == nil && mentions(string(b)) {
			t.Errorf("CNI address left allocated: %s (%s)", p, strings.TrimSpace(string(b)))
		}
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", crashTail(d.Output(), 60))
	}
}

func crashTail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// crashCase is one crash point and the RPC that reaches it.
type crashCase struct {
	point string
	// prepare makes what the RPC needs, with the daemon running normally.
	prepare func(t *testing.T, e *ctrEnv) (podID, ctrID string)
	// call runs the RPC that crashes.
	call func(e *ctrEnv, podID, ctrID string) error
}

// TestCrash kills the daemon at each crash point, restarts it, and checks
// that the object is complete or gone, that removing what is complete
// works, and that nothing is left on the host.
func TestCrash(t *testing.T) {
	e := newCtrEnv(t)
	newPod := func(t *testing.T, e *ctrEnv) (string, string) { return "", "" }
	readyPod := func(t *testing.T, e *ctrEnv) (string, string) { return runPod(t, e.d, e.d.PodConfig(t, "crash")), "" }
	runningCtr := func(t *testing.T, e *ctrEnv) (string, string) {
		return "", e.run(t, e.config(fmt.Sprintf("run%d", time.Now().UnixNano()), "exec sleep 600"))
	}
	createdCtr := func(t *testing.T, e *ctrEnv) (string, string) {
		return "", e.create(t, e.config(fmt.Sprintf("created%d", time.Now().UnixNano()), "exec sleep 600"))
	}
	runPodCall := func(e *ctrEnv, _, _ string) error {
		_, err := e.d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: e.d.PodConfig(t, "crash")})
		return err
	}
	sharedPIDPodCall := func(e *ctrEnv, _, _ string) error {
		cfg := e.d.PodConfig(t, "crashpid")
		cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
		_, err := e.d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: cfg})
		return err
	}
	createCall := func(e *ctrEnv, _, _ string) error {
		_, err := e.d.Runtime.CreateContainer(framework.Ctx(t), &runtime.CreateContainerRequest{
			PodSandboxId: e.pod, Config: e.config(fmt.Sprintf("c%d", time.Now().UnixNano()), "exec sleep 600"), SandboxConfig: e.podCf,
		})
		return err
	}
	startCall := func(e *ctrEnv, _, id string) error {
		_, err := e.d.Runtime.StartContainer(framework.Ctx(t), &runtime.StartContainerRequest{ContainerId: id})
		return err
	}
	// It ignores SIGTERM, so a stop goes on to SIGKILL after the timeout.
	stubbornCtr := func(t *testing.T, e *ctrEnv) (string, string) {
		return "", e.run(t, e.config(fmt.Sprintf("stubborn%d", time.Now().UnixNano()), "trap '' TERM; sleep 600 & wait"))
	}
	stopCall := func(e *ctrEnv, _, id string) error {
		_, err := e.d.Runtime.StopContainer(framework.Ctx(t), &runtime.StopContainerRequest{ContainerId: id, Timeout: 1})
		return err
	}
	removeCall := func(e *ctrEnv, _, id string) error {
		_, err := e.d.Runtime.RemoveContainer(framework.Ctx(t), &runtime.RemoveContainerRequest{ContainerId: id})
		return err
	}
	removePodCall := func(e *ctrEnv, pod, _ string) error {
		_, err := e.d.Runtime.RemovePodSandbox(framework.Ctx(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
		return err
	}
	cases := []crashCase{
		{"sandbox.run.after-cgroup", newPod, runPodCall},
		{"sandbox.run.after-namespaces", newPod, runPodCall},
		{"sandbox.run.after-network", newPod, runPodCall},
		{"sandbox.run.after-files", newPod, runPodCall},
		{"sandbox.run.before-record", newPod, runPodCall},
		{"sandbox.run.after-infra", newPod, sharedPIDPodCall},
		{"container.create.after-rootfs", newPod, createCall},
		{"container.create.before-conmon", newPod, createCall},
		{"container.create.after-conmon", newPod, createCall},
		{"container.start.after-runtime", createdCtr, startCall},
		{"container.stop.after-signal", stubbornCtr, stopCall},
		{"container.stop.after-runtime", stubbornCtr, stopCall},
		{"container.exit.after-runtime-delete", stubbornCtr, stopCall},
		{"container.remove.after-runtime-delete", runningCtr, removeCall},
		{"container.remove.after-rootfs-trash", runningCtr, removeCall},
		{"container.remove.before-record", runningCtr, removeCall},
		{"sandbox.stop.after-cni", readyPod, removePodCall},
		{"sandbox.remove.before-record", readyPod, removePodCall},
	}
	for _, tc := range cases {
		t.Run(tc.point, func(t *testing.T) {
			pod, ctr := tc.prepare(t, e)
			restartCrashing(t, e.d, tc.point)
			expectCrash(t, e.d, tc.point, tc.call(e, pod, ctr))
			ids := crashObjectIDs(e.d)
			ids = slices.DeleteFunc(ids, func(id string) bool { return id == e.pod })
			crashCheckComplete(t, e, ids)
			if tc.point == "container.start.after-runtime" {
				// The runtime started it: the restarted daemon must say so.
				if st, _ := e.status(t, ctr); st.State != runtime.ContainerState_CONTAINER_RUNNING {
					t.Errorf("container started before the crash is %v after restart", st.State)
				}
			}
			switch tc.point {
			case "container.stop.after-signal": // the signal was ignored
				crashCheckStopAgain(t, e, ctr, runtime.ContainerState_CONTAINER_RUNNING)
			case "container.stop.after-runtime": // SIGKILL done, exit file written
				crashCheckStopAgain(t, e, ctr, runtime.ContainerState_CONTAINER_EXITED)
			case "container.exit.after-runtime-delete": // exit recorded, then the runtime's part deleted
				crashCheckStopAgain(t, e, ctr, runtime.ContainerState_CONTAINER_EXITED)
			}
			crashCleanupExcept(t, e.d, e.pod)
			assertNoLeaks(t, e.d, ids...)
		})
	}
	t.Run("image.pull", func(t *testing.T) { testCrashPull(t, e) })
}

// crashCheckStopAgain: after a crash in the middle of a StopContainer the
// restarted daemon reports the state the crash left (want), and the
// kubelet's repeated StopContainer finishes the job, with the SIGKILL's
// exit code.
func crashCheckStopAgain(t *testing.T, e *ctrEnv, id string, want runtime.ContainerState) {
	t.Helper()
	if st, _ := e.status(t, id); st.State != want {
		t.Errorf("after the restart: %v, want %v", st.State, want)
	}
	if _, err := e.d.Runtime.StopContainer(framework.Ctx(t), &runtime.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatalf("StopContainer again after the crash: %v", err)
	}
	if st, _ := e.status(t, id); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
		t.Errorf("after the second stop: %v, exit code %d; want EXITED, 137", st.State, st.ExitCode)
	}
}

// crashCheckComplete checks that each object a crash left is either gone or
// whole: a listed pod is READY or NOTREADY with its record, a listed
// container has a state the CRI knows and answers Status.
func crashCheckComplete(t *testing.T, e *ctrEnv, ids []string) {
	t.Helper()
	ctx := framework.Ctx(t)
	for _, id := range ids {
		if st, err := e.d.Runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id}); err == nil {
			if st.Status.State == runtime.PodSandboxState_SANDBOX_READY && st.Status.GetNetwork().GetIp() == "" {
				t.Errorf("pod %s is READY without an IP after the crash", id)
			}
			continue
		} else if status.Code(err) != codes.NotFound {
			t.Errorf("PodSandboxStatus %s: %v", id, err)
		}
		st, err := e.d.Runtime.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			t.Errorf("ContainerStatus %s: %v", id, err)
			continue
		}
		var info ctrInfo
		_ = json.Unmarshal([]byte(st.Info["info"]), &info)
		switch st.Status.State {
		case runtime.ContainerState_CONTAINER_RUNNING:
			if info.Pid == 0 || !procAlive(info.Pid) {
				t.Errorf("container %s is RUNNING but its process %d is not", id, info.Pid)
			}
		case runtime.ContainerState_CONTAINER_CREATED:
			if info.ConmonPid == 0 || !procIs(info.ConmonPid, "conmon") {
				t.Errorf("container %s is CREATED but has no conmon", id)
			}
		case runtime.ContainerState_CONTAINER_EXITED:
		default:
			t.Errorf("container %s is %v after the crash", id, st.Status.State)
		}
	}
}

// crashCleanupExcept removes every pod but keep, and every container, through
// the CRI, as the kubelet would.
func crashCleanupExcept(t *testing.T, d *framework.Daemon, keep string) {
	t.Helper()
	ctx := framework.Ctx(t)
	cl, err := d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cl.Containers {
		if _, err := d.Runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			t.Errorf("RemoveContainer %s: %v", c.Id, err)
		}
	}
	pl, err := d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pl.Items {
		if p.Id == keep {
			continue
		}
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("StopPodSandbox %s: %v", p.Id, err)
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("RemovePodSandbox %s: %v", p.Id, err)
		}
	}
}

// testCrashPull kills the daemon after a layer commit and before the image
// record of a pull: after restart the image is absent with no layer of its
// own left, and the next pull works.
func testCrashPull(t *testing.T, e *ctrEnv) {
	img := framework.BusyboxImage(t)
	img.AddLayer(framework.File("crash-test", "extra layer\n", 0o644))
	e.reg.Push(t, "crashpull", "1", img)
	ref := e.reg.Ref("crashpull", "1")
	for _, point := range []string{"image.pull.after-layer", "image.pull.before-record"} {
		t.Run(point, func(t *testing.T) {
			before := crashLayerDirs(t, e.d)
			restartCrashing(t, e.d, point)
			_, err := e.d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
			expectCrash(t, e.d, point, err)
			st, err := e.d.Image.ImageStatus(framework.Ctx(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}})
			if err != nil {
				t.Fatal(err)
			}
			if st.Image != nil {
				t.Errorf("image %s listed after a crash before its record was written", ref)
			}
			if after := crashLayerDirs(t, e.d); !slices.Equal(after, before) {
				t.Errorf("layer dirs after crash and restart: %v, want %v", after, before)
			}
			if _, err := e.d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
				t.Fatalf("pull after the crash: %v", err)
			}
			if _, err := e.d.Image.RemoveImage(framework.Ctx(t), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
				t.Fatal(err)
			}
			if after := crashLayerDirs(t, e.d); !slices.Equal(after, before) {
				t.Errorf("layer dirs after pull and remove: %v, want %v", after, before)
			}
		})
	}
}

// TestCrashRandom runs pod and container lifecycles with the daemon
// killed at pseudo-random crash points, then cleans up through the CRI
// after each restart and checks that nothing is left.
func TestCrashRandom(t *testing.T) {
	e := newCtrEnv(t)
	const iterations = 15
	crashes := 0
	for i := range iterations {
		seed := time.Now().UnixNano()%1000000 + int64(i)
		// Low odds reach the later steps of the lifecycle, high odds the
		// early ones more often.
		restartCrashing(t, e.d, fmt.Sprintf("random:%d:%d", seed, 3+i%8))
		err := randomLifecycle(t, e, i)
		if err != nil {
			crashes++
			out := e.d.Output()
			if at := strings.LastIndex(out, "fault: crashing at "); at >= 0 {
				point, _, _ := strings.Cut(out[at+len("fault: crashing at "):], "\n")
				t.Logf("iteration %d (seed %d): crashed at %s", i, seed, point)
			}
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("iteration %d (seed %d): %v", i, seed, err)
			}
			if !framework.Poll(10*time.Second, func() bool { return !e.d.Running() }) {
				t.Fatalf("iteration %d: daemon still running after a failed RPC: %v", i, err)
			}
		}
		ids := crashObjectIDs(e.d)
		ids = slices.DeleteFunc(ids, func(id string) bool { return id == e.pod })
		e.d.Stop(t)
		e.d.Env = nil
		e.d.Start(t)
		crashCheckComplete(t, e, ids)
		crashCleanupExcept(t, e.d, e.pod)
		assertNoLeaks(t, e.d, ids...)
		if t.Failed() {
			t.Fatalf("iteration %d (seed %d) leaked", i, seed)
		}
	}
	t.Logf("%d of %d lifecycles crashed", crashes, iterations)
}

// randomLifecycle runs a pod with a container through its whole life, and
// a container in the long-lived pod; the first error (the crash) ends it.
func randomLifecycle(t *testing.T, e *ctrEnv, i int) error {
	ctx := framework.Ctx(t)
	rt := e.d.Runtime
	pcfg := e.d.PodConfig(t, fmt.Sprintf("rnd%d", i))
	pr, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pcfg})
	if err != nil {
		return err
	}
	ccfg := e.config("c", `exec sleep 600`)
	cr, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pr.PodSandboxId, Config: ccfg, SandboxConfig: pcfg})
	if err != nil {
		return err
	}
	if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return err
	}
	cr2, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: e.pod, Config: e.config(fmt.Sprintf("side%d", i), "exec sleep 600"), SandboxConfig: e.podCf})
	if err != nil {
		return err
	}
	if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cr2.ContainerId}); err != nil {
		return err
	}
	if _, err := rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: cr.ContainerId, Timeout: 1}); err != nil {
		return err
	}
	if _, err := rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: cr2.ContainerId}); err != nil {
		return err
	}
	if _, err := rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pr.PodSandboxId}); err != nil {
		return err
	}
	_, err = rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pr.PodSandboxId})
	return err
}

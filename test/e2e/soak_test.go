package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/tools/remotecommand"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// soakIterations is how many lifecycles TestSoakNoGrowth runs: a small
// number for `make test`, CRISERVER_SOAK_ITERATIONS=500 in `make bench`.
func soakIterations(t *testing.T) int {
	t.Helper()
	v := os.Getenv("CRISERVER_SOAK_ITERATIONS")
	if v == "" {
		return 30
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("CRISERVER_SOAK_ITERATIONS=%q: want a positive number", v)
	}
	return n
}

// lifecycle runs one pod with one container on the runtime handler
// ("" is the default) through everything the kubelet does to it, adding
// their IDs to ids (when set). While both run, inside (when set) is called.
func lifecycle(t testing.TB, d *framework.Daemon, handler, image string, cfg *runtime.PodSandboxConfig, ids *idSet, inside func(pod, ctr string)) error {
	pod, ctr, err := startPodContainer(t, d, handler, image, cfg, ids)
	if err != nil {
		return err
	}
	if inside != nil {
		inside(pod, ctr)
	}
	return removePodContainer(t, d, pod, ctr)
}

// startPodContainer runs a pod on the runtime handler with a busybox
// `sleep 3600` container in it and checks ExecSync works there.
func startPodContainer(t testing.TB, d *framework.Daemon, handler, image string, cfg *runtime.PodSandboxConfig, ids *idSet) (pod, ctr string, err error) {
	ctx := framework.Ctx(t)
	podResp, err := d.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		return "", "", fmt.Errorf("RunPodSandbox: %w", err)
	}
	pod = podResp.PodSandboxId
	if ids != nil {
		ids.add(pod)
	}
	ctrCfg := framework.ContainerConfig(image, "sleep", "")
	ctrCfg.Command = []string{"sleep", "3600"}
	ctr, err = d.CreateStart(ctx, pod, cfg, ctrCfg)
	if ctr != "" && ids != nil {
		ids.add(ctr)
	}
	if err != nil {
		return pod, ctr, err
	}
	resp, err := d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"true"}, Timeout: 10})
	if err != nil {
		return pod, ctr, fmt.Errorf("ExecSync: %w", err)
	}
	if resp.ExitCode != 0 {
		return pod, ctr, fmt.Errorf("ExecSync true: exit code %d: %s", resp.ExitCode, resp.Stderr)
	}
	return pod, ctr, nil
}

// removePodContainer stops and removes the container, then its pod.
func removePodContainer(t testing.TB, d *framework.Daemon, pod, ctr string) error {
	ctx := framework.Ctx(t)
	// sleep is PID 1 and ignores SIGTERM: timeout 0 kills it at once.
	if _, err := d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: ctr, Timeout: 0}); err != nil {
		return fmt.Errorf("StopContainer: %w", err)
	}
	if _, err := d.Runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: ctr}); err != nil {
		return fmt.Errorf("RemoveContainer: %w", err)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		return fmt.Errorf("StopPodSandbox: %w", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		return fmt.Errorf("RemovePodSandbox: %w", err)
	}
	return nil
}

// TestSoakNoGrowth runs sequential pod+container lifecycles and checks the
// daemon ends holding exactly what it held after a warm-up.
func TestSoakNoGrowth(t *testing.T) {
	e := startLeakDaemon(t)
	d := e.d
	image := d.PullBusybox(t, framework.StartRegistry(t))
	ids := newIDSet(d)
	const warmup = 3
	for i := range warmup {
		if err := lifecycle(t, d, "", image, d.PodConfig(t, "warm"+strconv.Itoa(i)), ids, nil); err != nil {
			t.Fatalf("warm-up %d: %v", i, err)
		}
	}
	before := e.snapshot(t, ids)

	n := soakIterations(t)
	start := time.Now()
	for i := range n {
		var during snapshot
		inside := func(pod, ctr string) {
			ids.addVeths(t, pod)
			kubeletCalls(t, d, pod, ctr, i%10 == 0)
			if i%5 == 0 {
				streamExec(t, d, ctr, []string{"spdy", "websocket-v5"}[i/5%2])
			}
			if i == 0 {
				during = e.snapshot(t, ids)
			}
		}
		if err := lifecycle(t, d, "", image, soakPodConfig(t, d, i), ids, inside); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		if i == 0 {
			checkCountsSeeAPod(t, before, during)
		}
	}
	t.Logf("%d lifecycles in %v (%v each)", n, time.Since(start).Round(time.Millisecond), (time.Since(start) / time.Duration(n)).Round(time.Millisecond))
	e.checkNoGrowth(t, ids, before)
	if pods := listPods(t, d, nil); len(pods) != 0 {
		t.Errorf("pods listed after the soak: %v", pods)
	}
}

// soakPodConfig varies the pods: every fourth maps a host port (portmap
// rules), every fourth shares one PID namespace (an infra process).
func soakPodConfig(t *testing.T, d *framework.Daemon, i int) *runtime.PodSandboxConfig {
	cfg := d.PodConfig(t, "soak"+strconv.Itoa(i))
	switch i % 4 {
	case 0:
		port := freePort(t)
		cfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: int32(port)}}
	case 1:
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	}
	return cfg
}

// kubeletCalls is what the kubelet asks about a running pod besides its
// lifecycle: stats, log reopening and, when slowExec, an exec that runs
// into its timeout.
func kubeletCalls(t *testing.T, d *framework.Daemon, pod, ctr string, slowExec bool) {
	t.Helper()
	ctx := framework.Ctx(t)
	if _, err := d.Runtime.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: ctr}); err != nil {
		t.Fatalf("ContainerStats: %v", err)
	}
	if _, err := d.Runtime.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("PodSandboxStats: %v", err)
	}
	if _, err := d.Runtime.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{}); err != nil {
		t.Fatalf("ListContainerStats: %v", err)
	}
	if _, err := d.Runtime.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: ctr}); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	if slowExec {
		_, err := d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"sleep", "30"}, Timeout: 1})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("ExecSync past its timeout = %v, want DeadlineExceeded", err)
		}
	}
}

// streamExec runs a command in ctr through the streaming server.
func streamExec(t *testing.T, d *framework.Daemon, ctr, protocol string) {
	t.Helper()
	resp, err := d.Runtime.Exec(framework.Ctx(t), &runtime.ExecRequest{ContainerId: ctr, Cmd: []string{"echo", "soak"}, Stdout: true})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	var out bytes.Buffer
	if err := streamProtocols[protocol](t, resp.Url).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{Stdout: &out}); err != nil || out.String() != "soak\n" {
		t.Fatalf("exec over %s: %v, output %q", protocol, err, out.String())
	}
}

// checkCountsSeeAPod makes sure each count moves while a pod and its
// container run (fds excepted: the daemon need not hold one per pod),
// so that its return to the start value means something.
func checkCountsSeeAPod(t *testing.T, before, during snapshot) {
	t.Helper()
	b, d := before.counts(), during.counts()
	for _, k := range []string{"mounts", "namespace pins", "conmon processes", "pod/container cgroups", "records", "overlay2 dirs", "iptables/nftables lines", "host veths", "IPAM allocations", "files under root and state"} {
		if d[k] <= b[k] {
			t.Errorf("%s: %d with a pod running, %d without; the leak check of it proves nothing", k, d[k], b[k])
		}
	}
}

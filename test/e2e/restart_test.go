package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// TestRestart: pods and containers run through a daemon restart, graceful
// or kill -9, and the restarted daemon reports them as they were, picks up
// what happened while it was down, streams to them, and removes them
// without leaving anything behind.
func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*framework.Daemon, *testing.T)
	}{
		{"graceful", func(d *framework.Daemon, t *testing.T) { d.Stop(t) }},
		{"kill", func(d *framework.Daemon, t *testing.T) { d.Kill(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testRestart(t, tc.stop) })
	}
}

func testRestart(t *testing.T, stop func(*framework.Daemon, *testing.T)) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)
	ticker := e.run(t, e.config("ticker", `i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done`))
	short := e.run(t, e.config("short", `sleep 2; exit 7`))
	acfg := e.config("attach", `while read l; do echo got:$l; done`)
	acfg.Stdin = true
	attach := e.run(t, acfg)
	done := e.run(t, e.config("done", `exit 3`))
	e.waitExit(t, done, 30*time.Second)
	writer := e.run(t, e.config("writer", `head -c 65536 /dev/zero >/blob.tmp && mv /blob.tmp /blob; exec sleep 600`))
	eventually(t, "writer to write its file", func() bool {
		r, err := e.d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: writer, Cmd: []string{"test", "-f", "/blob"}, Timeout: 10})
		return err == nil && r.ExitCode == 0
	})
	ids := []string{ticker, short, attach, done, writer}

	podBefore, podInfoBefore := podStatus(t, e.d, e.pod)
	before := map[string]*runtime.ContainerStatus{}
	infos := map[string]ctrInfo{}
	for _, id := range ids {
		before[id], infos[id] = e.status(t, id)
	}
	logPath := filepath.Join(e.podCf.LogDirectory, "ticker", "0.log")
	sizeAtStop := restartFileSize(t, logPath)

	stop(e.d, t)
	down := time.Now()
	eventually(t, `"short" to exit while the daemon is down`, func() bool { return e.exitRecorded(short) })
	if !framework.Poll(5*time.Second, func() bool { return restartFileSize(t, logPath) > sizeAtStop }) {
		t.Errorf("log did not grow while the daemon was down: %d bytes at stop", sizeAtStop)
	}
	e.d.Start(t)
	up := time.Now()

	podAfter, podInfoAfter := podStatus(t, e.d, e.pod)
	if podAfter.State != runtime.PodSandboxState_SANDBOX_READY || podAfter.CreatedAt != podBefore.CreatedAt ||
		podAfter.GetNetwork().GetIp() != podBefore.GetNetwork().GetIp() || podAfter.GetNetwork().GetIp() == "" {
		t.Errorf("pod after restart: state %v created %d ip %q; before: state %v created %d ip %q",
			podAfter.State, podAfter.CreatedAt, podAfter.GetNetwork().GetIp(), podBefore.State, podBefore.CreatedAt, podBefore.GetNetwork().GetIp())
	}
	if podInfoAfter != podInfoBefore {
		t.Errorf("pod info changed across restart: %+v -> %+v", podInfoBefore, podInfoAfter)
	}
	list, err := e.d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, c := range list.Containers {
		listed[c.Id] = true
	}
	for _, id := range ids {
		if !listed[id] {
			t.Errorf("container %s not listed after restart", id)
		}
		st, _ := e.status(t, id)
		b := before[id]
		if st.CreatedAt != b.CreatedAt || st.StartedAt != b.StartedAt {
			t.Errorf("%s timestamps changed: created %d->%d started %d->%d", b.Metadata.Name, b.CreatedAt, st.CreatedAt, b.StartedAt, st.StartedAt)
		}
		if id == done {
			if st.State != b.State || st.ExitCode != b.ExitCode || st.FinishedAt != b.FinishedAt || st.Reason != b.Reason {
				t.Errorf("exited container changed across restart: %v code %d finished %d %q -> %v code %d finished %d %q",
					b.State, b.ExitCode, b.FinishedAt, b.Reason, st.State, st.ExitCode, st.FinishedAt, st.Reason)
			}
			continue
		}
		if id == short {
			continue
		}
		if st.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Errorf("%s is %v after restart", b.Metadata.Name, st.State)
		}
	}
	st, _ := e.status(t, short)
	finished := time.Unix(0, st.FinishedAt)
	// The finish time is the exit file's modification time, which the
	// kernel stamps from its coarse clock (one tick, up to 10 ms, behind):
	// a program that started right after StartContainer noted the time can
	// seem to have run a few ms short of its 2 s.
	const coarse = 10 * time.Millisecond
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 ||
		finished.Before(time.Unix(0, st.StartedAt).Add(2*time.Second-coarse)) || finished.After(up) || finished.Before(down.Add(-time.Second)) {
		t.Errorf("container that exited while down: %v code %d finished %v (daemon down %v, up %v)", st.State, st.ExitCode, finished, down, up)
	}

	if !strings.Contains(e.d.Output(), "Container exited while the daemon was down") {
		t.Errorf("start-up did not log the exit it picked up")
	}
	// The writable layers are measured after the restart without waiting
	// for a stats call, which is what ImageFsInfo sums.
	eventually(t, "ImageFsInfo to count the writer's 64 KiB after restart", func() bool {
		r, err := e.d.Image.ImageFsInfo(ctx, &runtime.ImageFsInfoRequest{})
		return err == nil && len(r.ContainerFilesystems) == 1 && r.ContainerFilesystems[0].GetUsedBytes().GetValue() >= 64<<10
	})

	sizeAtStart := restartFileSize(t, logPath)
	eventually(t, "ticker log to grow after restart", func() bool { return restartFileSize(t, logPath) > sizeAtStart })

	restartStreams(t, e, ticker, attach)

	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatalf("StopPodSandbox after restart: %v", err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatalf("RemovePodSandbox after restart: %v", err)
	}
	for _, id := range ids {
		e.assertContainerGone(t, id, infos[id])
	}
	for _, p := range []string{podInfoBefore.NetNSPath, podInfoBefore.IPCNSPath, podInfoBefore.UTSNSPath, podInfoBefore.ShmPath} {
		if _, err := os.Lstat(p); p != "" && !os.IsNotExist(err) {
			t.Errorf("%s left after pod removal", p)
		}
	}
	assertNoLeaks(t, e.d, e.pod)
}

// restartStreams checks ExecSync, Exec and Attach on containers that ran
// through a daemon restart.
func restartStreams(t *testing.T, e *ctrEnv, running, attach string) {
	t.Helper()
	ctx := framework.Ctx(t)
	resp, err := e.d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: running, Cmd: []string{"sh", "-c", "echo synced; exit 4"}})
	if err != nil || string(resp.Stdout) != "synced\n" || resp.ExitCode != 4 {
		t.Errorf("ExecSync after restart: %v %q code %d", err, resp.GetStdout(), resp.GetExitCode())
	}
	u := e.execURL(t, &runtime.ExecRequest{ContainerId: running, Cmd: []string{"echo", "execd"}, Stdout: true})
	var out bytes.Buffer
	if err := streamProtocols["spdy"](t, u).StreamWithContext(streamCtx(t), remotecommand.StreamOptions{Stdout: &out}); err != nil || out.String() != "execd\n" {
		t.Errorf("Exec after restart: %v %q", err, out.String())
	}
	ar, err := e.d.Runtime.Attach(ctx, &runtime.AttachRequest{ContainerId: attach, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatalf("Attach after restart: %v", err)
	}
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	var stdout lockedBuffer
	sctx, cancel := context.WithCancel(streamCtx(t))
	done := make(chan error, 1)
	go func() {
		done <- streamProtocols["spdy"](t, ar.Url).StreamWithContext(sctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &stdout, Stderr: io.Discard})
	}()
	_, _ = io.WriteString(stdinW, "again\n")
	eventually(t, "attach output after restart", func() bool { return strings.Contains(stdout.String(), "got:again\n") })
	cancel()
	<-done
}

func restartFileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return fi.Size()
}

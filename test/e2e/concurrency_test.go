package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// TestConcurrentPods creates 50 pods, each with a container, from 10
// workers, then removes them the same way, while other clients keep
// calling Status, List and the status RPCs. Nothing may fail, and nothing
// may be left behind.
func TestConcurrentPods(t *testing.T) {
	const pods, workers = 50, 10
	e := startLeakDaemon(t)
	d := e.d
	image := d.PullBusybox(t, framework.StartRegistry(t))
	ids := newIDSet(d)
	if err := lifecycle(t, d, "", image, d.PodConfig(t, "warm"), ids, nil); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	before := e.snapshot(t, ids)

	ctx, stopPolling := context.WithCancel(context.Background())
	defer stopPolling()
	var polls atomic.Int64
	pollErrs := make(chan error, 100)
	var pollers sync.WaitGroup
	for range 3 {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			for ctx.Err() == nil {
				if err := pollOnce(ctx, d); err != nil {
					if ctx.Err() == nil {
						pollErrs <- err
					}
					return
				}
				polls.Add(1)
			}
		}()
	}

	type podCtr struct{ pod, ctr string }
	running := make([]podCtr, pods)
	start := time.Now()
	forEach(t, pods, workers, func(i int) error {
		pod, ctr, err := startPodContainer(t, d, "", image, d.PodConfig(t, "conc"+strconv.Itoa(i)), ids)
		running[i] = podCtr{pod, ctr}
		return err
	})
	if t.Failed() {
		stopPolling()
		pollers.Wait()
		t.FailNow()
	}
	t.Logf("%d pods with a container started in %v", pods, time.Since(start).Round(time.Millisecond))
	if got := listPods(t, d, nil); len(got) != pods {
		t.Errorf("ListPodSandbox with all pods up: %d pods, want %d", len(got), pods)
	}
	for _, r := range running {
		ids.addVeths(t, r.pod)
	}
	during := e.snapshot(t, ids)

	start = time.Now()
	forEach(t, pods, workers, func(i int) error {
		return removePodContainer(t, d, running[i].pod, running[i].ctr)
	})
	t.Logf("%d pods removed in %v", pods, time.Since(start).Round(time.Millisecond))
	stopPolling()
	pollers.Wait()
	close(pollErrs)
	for err := range pollErrs {
		t.Errorf("poller: %v", err)
	}
	t.Logf("%d poll rounds ran alongside", polls.Load())
	if polls.Load() == 0 {
		t.Errorf("no poll round completed while pods came and went")
	}

	if got := listPods(t, d, nil); len(got) != 0 {
		t.Errorf("pods listed after removing all: %v", got)
	}
	resp, err := d.Runtime.ListContainers(framework.Ctx(t), &runtime.ListContainersRequest{})
	if err != nil || len(resp.Containers) != 0 {
		t.Errorf("ListContainers after removing all = %v, %v", resp, err)
	}
	if during.Conmons < pods || during.NSPins < pods || during.Veths < pods {
		t.Errorf("with %d pods up: %+v; the leak check proves nothing", pods, during)
	}
	e.checkNoGrowth(t, ids, before)
}

// forEach calls fn(0..n-1) from workers goroutines and reports each error.
func forEach(t *testing.T, n, workers int, fn func(i int) error) {
	t.Helper()
	work := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(i); err != nil {
					mu.Lock()
					t.Errorf("#%d: %v", i, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// pollOnce is one round of what the kubelet's PLEG and status loops ask.
// A pod or container listed a moment ago may be gone by the time its
// status is asked: NotFound is the one error allowed, and only there.
func pollOnce(ctx context.Context, d *framework.Daemon) error {
	if _, err := d.Runtime.Status(ctx, &runtime.StatusRequest{Verbose: true}); err != nil {
		return fmt.Errorf("Status: %w", err)
	}
	pods, err := d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("ListPodSandbox: %w", err)
	}
	ctrs, err := d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("ListContainers: %w", err)
	}
	for _, p := range pods.Items {
		_, err := d.Runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: p.Id, Verbose: true})
		if err != nil && status.Code(err) != codes.NotFound {
			return fmt.Errorf("PodSandboxStatus %s: %w", p.Id, err)
		}
	}
	for _, c := range ctrs.Containers {
		_, err := d.Runtime.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: c.Id, Verbose: true})
		if err != nil && status.Code(err) != codes.NotFound {
			return fmt.Errorf("ContainerStatus %s: %w", c.Id, err)
		}
	}
	return nil
}

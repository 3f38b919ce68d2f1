package e2e

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// retryDeadline expires while the daemon is still making the object.
const retryDeadline = 20 * time.Millisecond

// TestRetryAfterClientDeadline: when the kubelet's deadline expires during
// RunPodSandbox or CreateContainer, the work completes anyway and the
// retry with the same metadata gets the first call's pod or container,
// never "name is reserved", and exactly one of it exists.
func TestRetryAfterClientDeadline(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)

	pcfg := e.d.PodConfig(t, "retry")
	short, cancel := context.WithTimeout(ctx, retryDeadline)
	_, err := e.d.Runtime.RunPodSandbox(short, &runtime.RunPodSandboxRequest{Config: pcfg})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("RunPodSandbox with a %v deadline: %v, want DeadlineExceeded", retryDeadline, err)
	}
	retried := time.Now()
	var podID string
	for i := range 2 { // while the first call may still run, then after
		resp, err := e.d.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pcfg})
		if err != nil {
			t.Fatalf("RunPodSandbox retry %d: %v", i, err)
		}
		if podID != "" && resp.PodSandboxId != podID {
			t.Fatalf("retry %d returned pod %s, the first %s", i, resp.PodSandboxId, podID)
		}
		podID = resp.PodSandboxId
	}
	pods, err := e.d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{
		LabelSelector: map[string]string{"name": "retry"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Id != podID || pods.Items[0].State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pods named retry after the retries: %v, want only READY %s", pods.Items, podID)
	}
	if created := time.Unix(0, pods.Items[0].CreatedAt); !created.Before(retried) {
		t.Errorf("pod created at %v, after the retry began (%v): the first call's work was lost", created, retried)
	}

	ccfg := e.config("retryctr", "exec sleep 600")
	short, cancel = context.WithTimeout(ctx, retryDeadline)
	_, err = e.d.Runtime.CreateContainer(short, &runtime.CreateContainerRequest{PodSandboxId: podID, Config: ccfg, SandboxConfig: pcfg})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("CreateContainer with a %v deadline: %v, want DeadlineExceeded", retryDeadline, err)
	}
	retried = time.Now()
	var ctrID string
	for i := range 2 {
		resp, err := e.d.Runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: podID, Config: ccfg, SandboxConfig: pcfg})
		if err != nil {
			t.Fatalf("CreateContainer retry %d: %v", i, err)
		}
		if ctrID != "" && resp.ContainerId != ctrID {
			t.Fatalf("retry %d returned container %s, the first %s", i, resp.ContainerId, ctrID)
		}
		ctrID = resp.ContainerId
	}
	ctrs, err := e.d.Runtime.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: podID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ctrs.Containers) != 1 || ctrs.Containers[0].Id != ctrID || ctrs.Containers[0].State != runtime.ContainerState_CONTAINER_CREATED {
		t.Fatalf("containers of the pod after the retries: %v, want only CREATED %s", ctrs.Containers, ctrID)
	}
	if created := time.Unix(0, ctrs.Containers[0].CreatedAt); !created.Before(retried) {
		t.Errorf("container created at %v, after the retry began (%v): the first call's work was lost", created, retried)
	}
	e.start(t, ctrID)
	if st, _ := e.status(t, ctrID); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("retried container is %v after start", st.State)
	}
	_, info := e.status(t, ctrID)
	stopRemovePod(t, e.d, podID)
	e.assertContainerGone(t, ctrID, info)
	assertNoLeaks(t, e.d, podID, ctrID)
}

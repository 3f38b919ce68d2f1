package e2e

import (
	"errors"
	"io"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// TestListStreaming: each Stream* list call returns what its unary List
// call returns, and a filter that matches nothing ends the stream with no
// message.
func TestListStreaming(t *testing.T) {
	e := newCtrEnv(t)
	ctx := framework.Ctx(t)
	running := e.run(t, e.config("streamed", "sleep 300"))

	t.Run("pod sandboxes", func(t *testing.T) {
		want, err := e.d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.d.Runtime.StreamPodSandboxes(ctx, &runtime.StreamPodSandboxesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := drain(t, st.Recv, (*runtime.StreamPodSandboxesResponse).GetPodSandboxes)
		if len(got) == 0 || !proto.Equal(&runtime.ListPodSandboxResponse{Items: got}, want) {
			t.Errorf("streamed %v, listed %v", got, want.Items)
		}
		none, err := e.d.Runtime.StreamPodSandboxes(ctx, &runtime.StreamPodSandboxesRequest{Filter: &runtime.PodSandboxFilter{Id: "no-such-pod"}})
		if err != nil {
			t.Fatal(err)
		}
		if msgs := drainMessages(t, none.Recv); msgs != 0 {
			t.Errorf("a filter matching nothing sent %d messages", msgs)
		}
	})
	t.Run("images", func(t *testing.T) {
		want, err := e.d.Image.ListImages(ctx, &runtime.ListImagesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.d.Image.StreamImages(ctx, &runtime.StreamImagesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := drain(t, st.Recv, (*runtime.StreamImagesResponse).GetImages)
		if len(got) == 0 || !proto.Equal(&runtime.ListImagesResponse{Images: got}, want) {
			t.Errorf("streamed %v, listed %v", got, want.Images)
		}
	})
	// Stats carry sampling times; compare whose stats they are.
	t.Run("container stats", func(t *testing.T) {
		st, err := e.d.Runtime.StreamContainerStats(ctx, &runtime.StreamContainerStatsRequest{Filter: &runtime.ContainerStatsFilter{PodSandboxId: e.pod}})
		if err != nil {
			t.Fatal(err)
		}
		got := drain(t, st.Recv, (*runtime.StreamContainerStatsResponse).GetContainerStats)
		if ids := statsIDs(got, (*runtime.ContainerStats).GetAttributes); !slices.Equal(ids, []string{running}) {
			t.Errorf("streamed stats of %v, want %s", ids, running)
		}
		if len(got) == 1 && got[0].GetMemory().GetWorkingSetBytes().GetValue() == 0 {
			t.Errorf("streamed stats without memory: %v", got[0])
		}
	})
	t.Run("pod sandbox stats", func(t *testing.T) {
		st, err := e.d.Runtime.StreamPodSandboxStats(ctx, &runtime.StreamPodSandboxStatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := drain(t, st.Recv, (*runtime.StreamPodSandboxStatsResponse).GetPodSandboxStats)
		if ids := statsIDs(got, (*runtime.PodSandboxStats).GetAttributes); !slices.Equal(ids, []string{e.pod}) {
			t.Errorf("streamed pod stats of %v, want %s", ids, e.pod)
		}
	})
}

// drain receives a stream to its end and returns the entries of all its
// messages.
func drain[M, E any](t *testing.T, recv func() (*M, error), entries func(*M) []E) []E {
	t.Helper()
	var out []E
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		out = append(out, entries(m)...)
	}
}

func drainMessages[M any](t *testing.T, recv func() (*M, error)) int {
	return len(drain(t, recv, func(*M) []struct{} { return []struct{}{{}} }))
}

func statsIDs[S any, A interface{ GetId() string }](stats []S, attrs func(S) A) []string {
	var ids []string
	for _, s := range stats {
		ids = append(ids, attrs(s).GetId())
	}
	return ids
}

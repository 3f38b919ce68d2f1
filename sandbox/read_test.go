package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/atomicfile"
)

func TestReadPodNames(t *testing.T) {
	root := t.TempDir()
	if got, err := ReadPodNames(root); err != nil || len(got) != 0 {
		t.Fatalf("ReadPodNames of a root without pods = %v, %v", got, err)
	}
	cfg, err := proto.Marshal(&runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "web", Namespace: "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "pods", "p1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteJSON(filepath.Join(root, "pods", "p1", "sandbox.json"), record{Version: recordVersion, ID: "p1", Config: cfg}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "pods", "p2"), 0o700); err != nil { // removed meanwhile
		t.Fatal(err)
	}
	got, err := ReadPodNames(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []PodName{{ID: "p1", Name: "web", Namespace: "prod"}}; !slices.Equal(got, want) {
		t.Errorf("ReadPodNames = %+v, want %+v", got, want)
	}
}

package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	dir := filepath.Join(root, "pods")
	// p1 is flat, p3 in the layout before (a daemon not started since).
	for _, p := range []string{filepath.Join(dir, "p1.json"), filepath.Join(dir, "p3", legacyRecordName)} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(filepath.Base(p), ".json")
		if id == "sandbox" {
			id = "p3"
		}
		if err := atomicfile.WriteJSON(p, record{Version: recordVersion, ID: id, Config: cfg}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "p2"), 0o700); err != nil { // removed meanwhile
		t.Fatal(err)
	}
	got, err := ReadPodNames(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []PodName{{ID: "p1", Name: "web", Namespace: "prod"}, {ID: "p3", Name: "web", Namespace: "prod"}}; !slices.Equal(got, want) {
		t.Errorf("ReadPodNames = %+v, want %+v", got, want)
	}
}

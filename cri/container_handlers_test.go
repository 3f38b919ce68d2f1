package cri

import (
	"context"
	"testing"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/oci"
)

func TestContainerRuntimeHandlers(t *testing.T) {
	cfg := oci.DefaultConfig()
	cfg.Handlers["kata"] = oci.Handler{RuntimePath: "/nonexistent/kata"}
	cfg.FillDerived(t.TempDir())
	rt, err := oci.NewRuntime(context.Background(), cfg, t.TempDir(), cgroups.Cgroupfs)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Runtime: rt})
	var names []string
	for _, h := range s.containerRuntimeHandlers(context.Background()) {
		names = append(names, h.Name)
		if h.Name == "kata" && h.Features.GetRecursiveReadOnlyMounts() {
			t.Error("a handler whose runtime is missing claims recursive read-only mounts")
		}
	}
	if got, want := len(names), 4; got != want || names[0] != "" {
		t.Errorf("handlers %q, want the default (\"\") first and crun, kata, runc", names)
	}
	if !containerRuntimeFeatures().GetSupplementalGroupsPolicy() {
		t.Error("supplemental groups policy not reported")
	}
}

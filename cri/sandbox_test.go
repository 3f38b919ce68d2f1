package cri

import (
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/sandbox"
)

func TestLabelsMatch(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "front"}
	for _, tc := range []struct {
		sel  map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{"app": "web"}, true},
		{map[string]string{"app": "web", "tier": "front"}, true},
		{map[string]string{"app": "db"}, false},
		{map[string]string{"zone": ""}, false},
	} {
		if got := labelsMatch(labels, tc.sel); got != tc.want {
			t.Errorf("labelsMatch(%v) = %v, want %v", tc.sel, got, tc.want)
		}
	}
}

func TestPodStatusMapping(t *testing.T) {
	created := time.Unix(100, 5)
	sb := &sandbox.Sandbox{
		ID:             "abc",
		Config:         &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "p"}, Labels: map[string]string{"a": "b"}},
		RuntimeHandler: "crun",
		CreatedAt:      created,
		State:          sandbox.StateReady,
		IPs:            []string{"10.0.0.2", "fd00::2"},
	}
	st := podStatus(sb)
	if st.State != runtime.PodSandboxState_SANDBOX_READY || st.CreatedAt != created.UnixNano() || st.RuntimeHandler != "crun" {
		t.Errorf("status = %v", st)
	}
	if st.Network.GetIp() != "10.0.0.2" || len(st.Network.AdditionalIps) != 1 || st.Network.AdditionalIps[0].Ip != "fd00::2" {
		t.Errorf("network = %v", st.Network)
	}
	sb.State = sandbox.StateNotReady
	if st := podStatus(sb); st.State != runtime.PodSandboxState_SANDBOX_NOTREADY || st.Network != nil {
		t.Errorf("stopped pod status = %v", st)
	}
	sb.State, sb.HostNetwork = sandbox.StateReady, true
	if st := podStatus(sb); st.Network != nil {
		t.Errorf("host network pod reports its own IPs: %v", st.Network)
	}
}

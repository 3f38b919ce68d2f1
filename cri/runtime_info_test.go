package cri

import (
	"context"
	"errors"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type fakeNetwork struct{ err error }

func (f fakeNetwork) Ready() error { return f.err }

func TestStatusReportsNetworkReadiness(t *testing.T) {
	tests := []struct {
		name       string
		netErr     error
		wantReady  bool
		wantReason string
	}{
		{"ready", nil, true, ""},
		{"no config", errors.New("no CNI network configuration found in /etc/cni/net.d"), false, "NetworkPluginNotReady"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Network: fakeNetwork{tt.netErr}})
			resp, err := s.Status(context.Background(), &runtime.StatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var net *runtime.RuntimeCondition
			for _, c := range resp.Status.Conditions {
				if c.Type == runtime.RuntimeReady && !c.Status {
					t.Error("RuntimeReady must be true")
				}
				if c.Type == runtime.NetworkReady {
					net = c
				}
			}
			if net == nil || net.Status != tt.wantReady || net.Reason != tt.wantReason {
				t.Fatalf("NetworkReady condition = %+v", net)
			}
			if !tt.wantReady && net.Message == "" {
				t.Error("a not-ready network needs a message")
			}
		})
	}
}

func TestRuntimeConfigCgroupDriver(t *testing.T) {
	for driver, want := range map[CgroupDriver]runtime.CgroupDriver{
		CgroupDriverCgroupfs: runtime.CgroupDriver_CGROUPFS,
		CgroupDriverSystemd:  runtime.CgroupDriver_SYSTEMD,
	} {
		s := New(Options{CgroupDriver: driver, Network: fakeNetwork{}})
		resp, err := s.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
		if err != nil || resp.Linux.CgroupDriver != want {
			t.Errorf("driver %s: got %v, %v", driver, resp, err)
		}
	}
}

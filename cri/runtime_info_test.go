package cri

import (
	"context"
	"errors"
	"testing"

	"github.com/criserver/criserver/cgroups"
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
	for driver, want := range map[cgroups.Driver]runtime.CgroupDriver{
		cgroups.Cgroupfs: runtime.CgroupDriver_CGROUPFS,
		cgroups.Systemd:  runtime.CgroupDriver_SYSTEMD,
	} {
		s := New(Options{CgroupDriver: driver, Network: fakeNetwork{}})
		resp, err := s.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
		if err != nil || resp.Linux.CgroupDriver != want {
			t.Errorf("driver %s: got %v, %v", driver, resp, err)
		}
	}
}

func TestUpdateRuntimeConfig(t *testing.T) {
	tests := []struct {
		name     string
		cidr     string
		wantErr  bool
		wantInfo string // podCIDR in verbose Status afterwards; "" for none
	}{
		{name: "nothing sent", cidr: ""},
		{name: "ipv4", cidr: "10.244.1.0/24", wantInfo: "10.244.1.0/24"},
		{name: "dual stack", cidr: "10.244.1.0/24,fd00:10:244:1::/64", wantInfo: "10.244.1.0/24,fd00:10:244:1::/64"},
		{name: "not a CIDR", cidr: "10.244.1.0", wantErr: true},
		{name: "one bad of two", cidr: "10.244.1.0/24,nonsense", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Network: fakeNetwork{}})
			ctx := context.Background()
			_, err := s.UpdateRuntimeConfig(ctx, &runtime.UpdateRuntimeConfigRequest{
				RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: tt.cidr}},
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("UpdateRuntimeConfig(%q) error = %v, want error %v", tt.cidr, err, tt.wantErr)
			}
			resp, err := s.Status(ctx, &runtime.StatusRequest{Verbose: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Info["podCIDR"]; got != tt.wantInfo {
				t.Errorf("Status podCIDR = %q, want %q", got, tt.wantInfo)
			}
		})
	}
}

package nri

import (
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCRIResources(t *testing.T) {
	base := &runtime.LinuxContainerResources{
		CpuShares: 1024, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 128 << 20, OomScoreAdj: 5,
		CpusetCpus: "0-1", Unified: map[string]string{"memory.high": "max"},
	}
	tests := []struct {
		name    string
		update  *api.LinuxResources
		want    *runtime.LinuxContainerResources
		wantErr string
	}{
		{
			name:   "nil update keeps base",
			update: nil,
			want:   base,
		},
		{
			name: "set fields overlay base",
			update: &api.LinuxResources{
				Cpu:     &api.LinuxCPU{Shares: api.UInt64(uint64(256)), Cpus: "1"},
				Memory:  &api.LinuxMemory{Limit: api.Int64(int64(64 << 20))},
				Unified: map[string]string{"memory.max": "1G"},
			},
			want: &runtime.LinuxContainerResources{
				CpuShares: 256, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20, OomScoreAdj: 5,
				CpusetCpus: "1", Unified: map[string]string{"memory.high": "max", "memory.max": "1G"},
			},
		},
		{
			name:    "pids limit cannot be carried",
			update:  &api.LinuxResources{Pids: &api.LinuxPids{Limit: 10}},
			wantErr: "pids",
		},
		{
			name:    "memory reservation cannot be carried",
			update:  &api.LinuxResources{Memory: &api.LinuxMemory{Reservation: api.Int64(int64(1))}},
			wantErr: "reservation",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := criResources(base, tc.update)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want.String() {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
			if base.CpuShares != 1024 || base.Unified["memory.max"] != "" {
				t.Errorf("base changed: %v", base)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"relative socket", func(c *Config) { c.SocketPath = "nri.sock" }, "socket_path"},
		{"zero request timeout", func(c *Config) { c.PluginRequestTimeout = 0 }, "plugin_request_timeout"},
		{"negative registration timeout", func(c *Config) { c.PluginRegistrationTimeout = -1 }, "plugin_registration_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

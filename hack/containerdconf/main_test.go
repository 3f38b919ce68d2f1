package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/criserver/criserver/test/containerdconf"
)

func TestRun(t *testing.T) {
	cluster := containerdconf.Under("/n/containerd", "/bin/runc")
	cluster.Address, cluster.CNIConfDir = "/n/containerd.sock", "/n/cni"
	cluster.SandboxImage, cluster.LogLevel = "criserver.local/pause:1", "warn"
	handlers := containerdconf.Under("/d", "/bin/runc")
	handlers.SandboxImage, handlers.RegistryConfigPath = "p:1", "/d/certs.d"
	handlers.Runtimes = append(handlers.Runtimes, containerdconf.Runtime{Name: "test-handler", Binary: "/bin/runc", Root: "/d/state/runc"})
	tests := []struct {
		name string
		args []string
		want containerdconf.Config
	}{
		{"cluster", []string{"-dir", "/n/containerd", "-runc", "/bin/runc", "-sandbox-image", "criserver.local/pause:1",
			"-address", "/n/containerd.sock", "-cni-conf-dir", "/n/cni", "-log-level", "warn"}, cluster},
		{"handlers", []string{"-dir", "/d", "-runc", "/bin/runc", "-sandbox-image", "p:1",
			"-registry-config-path", "/d/certs.d", "-runtime", "test-handler"}, handlers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(tt.args, &out); err != nil {
				t.Fatal(err)
			}
			want, err := tt.want.Render()
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != string(want) {
				t.Errorf("wrote\n%s\nwant\n%s", out.String(), want)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no dir", []string{"-runc", "/bin/runc", "-sandbox-image", "p:1"}, "-dir"},
		{"no sandbox image", []string{"-dir", "/d", "-runc", "/bin/runc"}, "sandbox image"},
		{"relative dir", []string{"-dir", "d", "-runc", "/bin/runc", "-sandbox-image", "p:1"}, "absolute"},
		{"duplicate handler", []string{"-dir", "/d", "-runc", "/bin/runc", "-sandbox-image", "p:1", "-runtime", "runc"}, "twice"},
		{"extra argument", []string{"-dir", "/d", "-runc", "/bin/runc", "-sandbox-image", "p:1", "x"}, "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(tt.args, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error mentioning %q", err, tt.want)
			}
			if out.Len() > 0 {
				t.Errorf("wrote %q on error", out.String())
			}
		})
	}
}

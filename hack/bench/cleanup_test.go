package main

import (
	"encoding/json"
	"testing"
)

func TestRootfsLayerOf(t *testing.T) {
	tests := []struct {
		rel   string
		isDir bool
		want  int
	}{
		{"usr/lib/x86_64-linux-gnu", true, 0},
		{"usr/lib/x86_64-linux-gnu/libc.so.6", false, 0},
		{"usr/share/doc", true, 1},
		{"usr/bin/bash", false, 2},
		{"usr", true, 2},
		{"etc/passwd", false, 3},
		{"var/lib/dpkg/status", false, 3},
	}
	for _, tt := range tests {
		if got := rootfsLayerOf(tt.rel, tt.isDir); got != tt.want {
			t.Errorf("rootfsLayerOf(%q, %v) = %d, want %d", tt.rel, tt.isDir, got, tt.want)
		}
	}
}

func TestNetworkConflist(t *testing.T) {
	conf, err := network{name: "n", bridge: "br0", subnet: "10.9.1.7/16"}.conflist("/ipam")
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				DataDir string `json:"dataDir"`
				Ranges  [][]struct{ Subnet, Gateway string }
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(conf), &parsed); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, conf)
	}
	if len(parsed.Plugins) != 4 || parsed.Plugins[0].Type != "bridge" {
		t.Fatalf("plugins = %+v, want bridge, portmap, bandwidth, firewall", parsed.Plugins)
	}
	r := parsed.Plugins[0].IPAM.Ranges[0][0]
	if r.Subnet != "10.9.0.0/16" || r.Gateway != "10.9.0.1" || parsed.Plugins[0].IPAM.DataDir != "/ipam" {
		t.Errorf("ipam = %+v, want masked subnet, .1 gateway, own dataDir", parsed.Plugins[0].IPAM)
	}
	if _, err := (network{subnet: "bad"}).conflist("/x"); err == nil {
		t.Error("bad subnet accepted")
	}
}

func TestShimSocket(t *testing.T) {
	argv := []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", "abc", "-address", "/r/containerd.sock"}
	// sha256("/r/containerd.sock/k8s.io/abc")
	want := "/run/containerd/s/91f6e88591ae067a438adb5c46a990526140821a6fd30c63253a944fce4dc40b"
	if got := shimSocket(argv); got != want {
		t.Fatalf("shimSocket = %q, want %q", got, want)
	}
	if shimSocket([]string{"/usr/bin/conmon", "-id", "x"}) != "" {
		t.Error("a conmon got a shim socket")
	}
	if shimSocket(argv[:3]) != "" {
		t.Error("a shim without -id and -address got a socket")
	}
}

package oci

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChooseDefaultHandler(t *testing.T) {
	// A v1-only host, and a hybrid one whose cgroup2 hierarchy holds hugetlb.
	v1 := t.TempDir()
	hybrid := t.TempDir()
	if err := os.MkdirAll(filepath.Join(hybrid, "unified"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hybrid, "unified", "cgroup.controllers"), []byte("hugetlb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		mutate     func(*Config)
		cgroupRoot string
		want       string
		reason     string // part of the reason
	}{
		{"crun usable", func(c *Config) { c.Handlers[HandlerCrun] = Handler{RuntimePath: "/bin/true"} }, v1, HandlerCrun, "runs on this host"},
		{"crun missing", func(c *Config) { c.Handlers[HandlerCrun] = Handler{RuntimePath: "/nonexistent/crun"} }, v1, HandlerRunc, "/nonexistent/crun"},
		{"crun not configured", func(c *Config) { delete(c.Handlers, HandlerCrun) }, v1, HandlerRunc, "no \"crun\" handler"},
		{"crun fails", func(c *Config) { c.Handlers[HandlerCrun] = Handler{RuntimePath: "/bin/false"} }, v1, HandlerRunc, "--version"},
		{"hybrid refusal", func(c *Config) { c.Handlers[HandlerCrun] = Handler{RuntimePath: "/bin/true"} }, hybrid, HandlerRunc, "hugetlb"},
		{"configured", func(c *Config) {
			c.Handlers[HandlerCrun] = Handler{RuntimePath: "/bin/true"}
			c.DefaultHandler = HandlerRunc
		}, v1, HandlerRunc, "default_handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			got := chooseDefaultHandler(context.Background(), c, tt.cgroupRoot)
			if got.handler != tt.want || !strings.Contains(got.reason, tt.reason) {
				t.Errorf("chose %q (%s), want %q with a reason mentioning %q", got.handler, got.reason, tt.want, tt.reason)
			}
		})
	}
}

func TestResolveHandler(t *testing.T) {
	r := &Runtime{cfg: DefaultConfig(), def: defaultChoice{handler: HandlerCrun}}
	for in, want := range map[string]string{"": HandlerCrun, HandlerRunc: HandlerRunc, "kata": "kata"} {
		if got := r.ResolveHandler(in); got != want {
			t.Errorf("ResolveHandler(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := r.handler("kata"); err == nil {
		t.Error("an unconfigured handler resolved")
	}
}

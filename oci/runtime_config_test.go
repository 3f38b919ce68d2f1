package oci

import (
	"strings"
	"testing"
)

func TestConfigHasHandler(t *testing.T) {
	c := DefaultConfig()
	for name, want := range map[string]bool{"": true, "runc": true, "crun": true, "kata": false} {
		if got := c.HasHandler(name); got != want {
			t.Errorf("HasHandler(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no runc", func(c *Config) { delete(c.Handlers, "runc") }, "default_handler is empty"},
		{"no runc, crun default", func(c *Config) { delete(c.Handlers, "runc"); c.DefaultHandler = "crun" }, ""},
		{"unknown default", func(c *Config) { c.DefaultHandler = "kata" }, "default_handler"},
		{"empty name", func(c *Config) { c.Handlers[""] = Handler{} }, "reserved"},
		{"relative root", func(c *Config) { c.Handlers["runc"] = Handler{RuntimeRoot: "run/x"} }, "handlers.runc.runtime_root"},
		{"no conmon", func(c *Config) { c.ConmonPath = "" }, "conmon_path"},
		{"bad volumes", func(c *Config) { c.ImageVolumes = "copy" }, "image_volumes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestConfigFillDerived(t *testing.T) {
	c := DefaultConfig()
	c.Handlers["kata"] = Handler{}
	c.Handlers["crun"] = Handler{RuntimePath: "/opt/crun", RuntimeRoot: "/custom"}
	c.FillDerived("/run/x")
	if h := c.Handlers["runc"]; h.RuntimeRoot != "/run/x/runc" || h.RuntimePath != "runc" {
		t.Errorf("runc = %+v", h)
	}
	if h := c.Handlers["kata"]; h.RuntimePath != "kata" || h.RuntimeRoot != "/run/x/kata" {
		t.Errorf("kata = %+v", h)
	}
	if h := c.Handlers["crun"]; h.RuntimePath != "/opt/crun" || h.RuntimeRoot != "/custom" {
		t.Errorf("crun = %+v", h)
	}
}

package containerdconf

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

const cri = `io.containerd.grpc.v1.cri`

// withRuntimes is c with extra runtime handlers.
func withRuntimes(c Config, rs ...Runtime) Config {
	c.Runtimes = append(append([]Runtime(nil), c.Runtimes...), rs...)
	return c
}

func TestConfigRender(t *testing.T) {
	base := Under("/d", "/usr/sbin/runc")
	base.SandboxImage = "registry.k8s.io/pause:3.10"
	bench := base
	bench.LogLevel = "warn"
	bench.RegistryConfigPath = "/d/certs.d"
	e2e := withRuntimes(base, Runtime{Name: "test-handler", Binary: "/usr/sbin/runc", Root: "/d/state/runc"})
	e2e.RegistryConfigPath = "/d/certs.d"
	cluster := Under("/n/containerd", "/bin/runc")
	cluster.Address = "/n/containerd.sock"
	cluster.CNIConfDir = "/n/cni"
	cluster.SandboxImage = "criserver.local/pause:1"
	cluster.LogLevel = "warn"
	quoted := Under(`/tmp/a "b"\c`, "/usr/sbin/runc")
	quoted.SandboxImage = "p:1"

	tests := []struct {
		name string
		c    Config
		want map[string]any // dotted key path to value; nil means absent
	}{
		{"under", base, map[string]any{
			"version": int64(2), "root": "/d/root", "state": "/d/state", "oom_score": int64(0),
			"grpc.address": "/d/containerd.sock", "ttrpc.address": "", "debug.address": "", "metrics.address": "",
			"debug.level": nil,
			"plugins.io.containerd.internal.v1.opt.path":                         "/d/opt",
			"plugins." + cri + ".sandbox_image":                                  "registry.k8s.io/pause:3.10",
			"plugins." + cri + ".restrict_oom_score_adj":                         true,
			"plugins." + cri + ".stream_server_address":                          "127.0.0.1",
			"plugins." + cri + ".stream_server_port":                             "0",
			"plugins." + cri + ".cni.bin_dir":                                    "/usr/lib/cni",
			"plugins." + cri + ".cni.conf_dir":                                   "/d/cni",
			"plugins." + cri + ".containerd.snapshotter":                         "overlayfs",
			"plugins." + cri + ".containerd.default_runtime_name":                "runc",
			"plugins." + cri + ".containerd.runtimes.runc.runtime_type":          "io.containerd.runc.v2",
			"plugins." + cri + ".containerd.runtimes.runc.options.BinaryName":    "/usr/sbin/runc",
			"plugins." + cri + ".containerd.runtimes.runc.options.Root":          "/d/state/runc",
			"plugins." + cri + ".containerd.runtimes.runc.options.SystemdCgroup": false,
			"plugins." + cri + ".containerd.runtimes.test-handler":               nil,
			"plugins." + cri + ".registry":                                       nil,
		}},
		{"bench", bench, map[string]any{
			"debug.level": "warn",
			"plugins." + cri + ".registry.config_path":     "/d/certs.d",
			"plugins." + cri + ".max_concurrent_downloads": int64(3),
		}},
		{"e2e", e2e, map[string]any{
			"debug.level": nil,
			"plugins." + cri + ".containerd.default_runtime_name":                        "runc",
			"plugins." + cri + ".containerd.runtimes.test-handler.runtime_type":          "io.containerd.runc.v2",
			"plugins." + cri + ".containerd.runtimes.test-handler.options.BinaryName":    "/usr/sbin/runc",
			"plugins." + cri + ".containerd.runtimes.test-handler.options.Root":          "/d/state/runc",
			"plugins." + cri + ".containerd.runtimes.test-handler.options.SystemdCgroup": false,
			"plugins." + cri + ".registry.config_path":                                   "/d/certs.d",
		}},
		{"cluster", cluster, map[string]any{
			"root": "/n/containerd/root", "grpc.address": "/n/containerd.sock", "debug.level": "warn",
			"plugins." + cri + ".cni.conf_dir":                                "/n/cni",
			"plugins." + cri + ".sandbox_image":                               "criserver.local/pause:1",
			"plugins." + cri + ".containerd.runtimes.runc.options.BinaryName": "/bin/runc",
			"plugins." + cri + ".containerd.runtimes.runc.options.Root":       "/n/containerd/state/runc",
			"plugins." + cri + ".registry":                                    nil,
		}},
		{"quoted", quoted, map[string]any{
			"root": `/tmp/a "b"\c/root`,
			"plugins." + cri + ".containerd.runtimes.runc.options.Root": `/tmp/a "b"\c/state/runc`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.c.Render()
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if _, err := toml.Decode(string(data), &doc); err != nil {
				t.Fatalf("rendered config does not parse: %v\n%s", err, data)
			}
			for key, want := range tt.want {
				got, ok := lookup(doc, key)
				if want == nil {
					if ok {
						t.Errorf("%s = %v, want it absent", key, got)
					}
					continue
				}
				if !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v (present %v), want %#v", key, got, ok, want)
				}
			}
		})
	}
}

// lookup follows a dotted key path through nested tables; the plugin names
// (io.containerd.grpc.v1.cri) are single keys with dots, so the longest
// key present wins at each level.
func lookup(doc map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	var cur any = doc
	for len(parts) > 0 {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		found := false
		for n := len(parts); n > 0; n-- {
			if v, ok := m[strings.Join(parts[:n], ".")]; ok {
				cur, parts, found = v, parts[n:], true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return cur, true
}

func TestConfigRenderErrors(t *testing.T) {
	valid := Under("/d", "/usr/sbin/runc")
	valid.SandboxImage = "pause:1"
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no root", func(c *Config) { c.Root = "" }, "root"},
		{"relative state", func(c *Config) { c.State = "state" }, "absolute"},
		{"no address", func(c *Config) { c.Address = "" }, "address"},
		{"no opt path", func(c *Config) { c.OptPath = "" }, "opt path"},
		{"no CNI bin dir", func(c *Config) { c.CNIBinDir = "" }, "CNI bin dir"},
		{"relative registry path", func(c *Config) { c.RegistryConfigPath = "certs.d" }, "registry config path"},
		{"no sandbox image", func(c *Config) { c.SandboxImage = "" }, "sandbox image"},
		{"control character", func(c *Config) { c.SandboxImage = "pause\x07:1" }, "control character"},
		{"invalid UTF-8", func(c *Config) { c.Root = "/d/\xff" }, "UTF-8"},
		{"no runtime", func(c *Config) { c.Runtimes = nil }, "no runtime handler"},
		{"handler name", func(c *Config) { c.Runtimes[0].Name = "runc.v2" }, "runtime handler name"},
		{"handler twice", func(c *Config) { c.Runtimes = append(c.Runtimes, c.Runtimes[0]) }, "twice"},
		{"no binary", func(c *Config) { c.Runtimes[0].Binary = "" }, "runc binary"},
		{"log level", func(c *Config) { c.LogLevel = "warning" }, "log level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			c.Runtimes = append([]Runtime(nil), valid.Runtimes...)
			tt.change(&c)
			data, err := c.Render()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render() = %q, %v; want an error mentioning %q", data, err, tt.want)
			}
		})
	}
}

// TestConfigContainerdReads has the installed containerd read a rendered
// config and print what it made of it (containerd config dump does not
// start anything), so that a key containerd 1.6 would not read as meant
// fails here, not in a run of the benchmark.
func TestConfigContainerdReads(t *testing.T) {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Skip("containerd is not installed (hack/containerd/install.sh installs Debian's)")
	}
	dir := t.TempDir()
	c := withRuntimes(Under(dir, "/usr/sbin/runc"), Runtime{Name: "test-handler", Binary: "/bin/runc", Root: "/r"})
	c.SandboxImage, c.LogLevel, c.RegistryConfigPath = "pause:1", "warn", filepath.Join(dir, "certs.d")
	data, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--config", path, "config", "dump").Output()
	if err != nil {
		t.Fatalf("containerd config dump: %v", err)
	}
	var dump map[string]any
	if _, err := toml.Decode(string(out), &dump); err != nil {
		t.Fatalf("dump does not parse: %v", err)
	}
	for key, want := range map[string]any{
		"root": c.Root, "debug.level": "warn",
		"plugins." + cri + ".sandbox_image":                                       "pause:1",
		"plugins." + cri + ".registry.config_path":                                c.RegistryConfigPath,
		"plugins." + cri + ".containerd.runtimes.test-handler.options.BinaryName": "/bin/runc",
		"plugins." + cri + ".containerd.runtimes.runc.options.Root":               filepath.Join(dir, "state", "runc"),
	} {
		if got, ok := lookup(dump, key); !ok || got != want {
			t.Errorf("containerd read %s = %#v (present %v), want %#v", key, got, ok, want)
		}
	}
}

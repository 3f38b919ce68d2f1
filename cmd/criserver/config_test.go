package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigRefusesBadInput(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr []string // every substring must appear
	}{
		{"unknown top-level key", "rooot = \"/x\"\n", []string{"unknown key rooot"}},
		{"unknown section key", "[cni]\nconf_dirr = \"/x\"\n", []string{"unknown key cni.conf_dirr"}},
		{"wrong type", "[image]\nmax_concurrent_downloads = \"three\"\n", []string{"image.max_concurrent_downloads"}},
		{"bad enum", "cgroup_driver = \"cgroupv3\"\n", []string{"cgroup_driver", "cgroupv3"}},
		{"relative path", "root = \"var/lib\"\n", []string{"root", "not an absolute path"}},
		{"bad subnet", "[cni]\ndefault_subnet = \"10.0.0.0/33\"\n", []string{"cni.default_subnet"}},
		{"zero downloads", "[image]\nmax_concurrent_downloads = 0\n", []string{"image.max_concurrent_downloads"}},
		{"negative timeout", "shutdown_timeout = \"-1s\"\n", []string{"shutdown_timeout"}},
		{"syntax", "root = \n", []string{"config.toml"}},
		{"unknown metric family", "[stats]\nincluded_pod_metrics = [\"cpu\", \"gpu\"]\n", []string{"stats.included_pod_metrics", "gpu"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			writeFile(t, path, tt.content)
			_, err := loadConfig(path, true)
			if err == nil {
				t.Fatal("want an error, got none")
			}
			for _, want := range append(tt.wantErr, path) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestLoadConfigMergeOrder(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "config.toml")
	writeFile(t, main, "state = \"/run/a\"\nshutdown_timeout = \"3s\"\n[cni]\nbin_dirs = [\"/one\"]\n")
	writeFile(t, filepath.Join(dir, "config.d", "20-b.toml"), "state = \"/run/b\"\n")
	writeFile(t, filepath.Join(dir, "config.d", "10-a.toml"), "state = \"/run/x\"\nlisten = \"/run/x.sock\"\n")

	cfg, err := loadConfig(main, true)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := parseFlags("t", []string{"--listen", "/run/flag.sock", "--cni-bin-dir", "/f1,/f2", "--cni-bin-dir", "/f3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := opts.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.State != "/run/b" {
		t.Errorf("state = %q: later drop-in must win", cfg.State)
	}
	if cfg.Listen != "/run/flag.sock" {
		t.Errorf("listen = %q: flag must win over files", cfg.Listen)
	}
	if got := strings.Join(cfg.CNI.BinDirs, ","); got != "/f1,/f2,/f3" {
		t.Errorf("bin dirs = %q", got)
	}
	if cfg.ShutdownTimeout != 3*time.Second {
		t.Errorf("shutdown_timeout = %v: value from the main file was lost", cfg.ShutdownTimeout)
	}
	if cfg.CNI.CacheDir != "/run/b/cni-cache" {
		t.Errorf("cni cache dir %q does not follow state", cfg.CNI.CacheDir)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.toml")
	if _, err := loadConfig(path, false); err != nil {
		t.Errorf("default config path absent must mean built-in defaults, got %v", err)
	}
	if _, err := loadConfig(path, true); err == nil {
		t.Error("an explicitly named config file that is absent must be an error")
	}
}

func TestFlagValidationNamesFlagSource(t *testing.T) {
	cfg := defaultConfig()
	opts, err := parseFlags("t", []string{"--cgroup-driver", "bogus"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = opts.apply(&cfg)
	if err == nil || !strings.Contains(err.Error(), "command line") || !strings.Contains(err.Error(), "cgroup_driver") {
		t.Fatalf("want a command line error naming cgroup_driver, got %v", err)
	}
}

func TestPrintedConfigLoadsBack(t *testing.T) {
	cfg := defaultConfig()
	cfg.fillDerived()
	out, err := cfg.encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, path, string(out))
	got, err := loadConfig(path, true)
	if err != nil {
		t.Fatalf("`criserver config` output must be a valid config: %v\n%s", err, out)
	}
	if got.CNI.CacheDir != cfg.CNI.CacheDir || got.Listen != cfg.Listen {
		t.Errorf("round trip changed values: %+v", got)
	}
}

package containerdconf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestHostsRender(t *testing.T) {
	tests := []struct {
		name string
		h    Hosts
	}{
		{"local registry", Hosts{Server: "http://127.0.0.1:5000", Host: "http://127.0.0.1:5000"}},
		{"mirror", Hosts{Server: "https://registry.k8s.io", Host: "http://127.0.0.1:5000/v2/registry.k8s.io", OverridePath: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.h.Render()
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Server string
				Host   map[string]struct {
					Capabilities []string
					OverridePath *bool `toml:"override_path"`
				}
			}
			md, err := toml.Decode(string(data), &doc)
			if err != nil {
				t.Fatalf("rendered hosts.toml does not parse: %v\n%s", err, data)
			}
			if un := md.Undecoded(); len(un) > 0 {
				t.Errorf("unexpected keys %v in\n%s", un, data)
			}
			if doc.Server != tt.h.Server {
				t.Errorf("server = %q, want %q", doc.Server, tt.h.Server)
			}
			host, ok := doc.Host[tt.h.Host]
			if !ok || len(doc.Host) != 1 {
				t.Fatalf("hosts %v, want only %q", doc.Host, tt.h.Host)
			}
			if want := []string{"pull", "resolve"}; !reflect.DeepEqual(host.Capabilities, want) {
				t.Errorf("capabilities = %v, want %v", host.Capabilities, want)
			}
			present := host.OverridePath != nil
			if value := present && *host.OverridePath; present != tt.h.OverridePath || value != tt.h.OverridePath {
				t.Errorf("override_path present %v = %v, want %v (and absent when false)", present, value, tt.h.OverridePath)
			}
		})
	}
}

func TestHostsRenderErrors(t *testing.T) {
	tests := []struct {
		name string
		h    Hosts
		want string
	}{
		{"no server", Hosts{Host: "http://a"}, "server"},
		{"no scheme", Hosts{Server: "registry.k8s.io", Host: "http://a"}, "server"},
		{"other scheme", Hosts{Server: "https://a", Host: "ftp://a"}, "host"},
		{"control character", Hosts{Server: "https://a", Host: "http://a\n"}, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.h.Render()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render() = %q, %v; want an error mentioning %q", data, err, tt.want)
			}
		})
	}
}

func TestWriteHosts(t *testing.T) {
	dir := t.TempDir()
	h := Hosts{Server: "https://registry.k8s.io", Host: "http://127.0.0.1:5000/v2/registry.k8s.io", OverridePath: true}
	if err := WriteHosts(dir, "registry.k8s.io", h); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "registry.k8s.io", "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := h.Render()
	if string(got) != string(want) {
		t.Errorf("wrote %q, want %q", got, want)
	}
	for _, bad := range []string{"", "a/b", "..", "."} {
		if err := WriteHosts(dir, bad, h); err == nil {
			t.Errorf("WriteHosts(%q) succeeded, want an error", bad)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries after the refused writes, want 1", dir, len(entries))
	}
}

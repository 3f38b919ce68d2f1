package containerdconf

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"text/template"
)

// Hosts is a hosts.toml: where containerd pulls an image of one registry
// from.
type Hosts struct {
	// Server is the registry the file is for, as a URL
	// ("https://registry.k8s.io", or "http://127.0.0.1:5000" for the
	// local registry itself).
	Server string
	// Host is the URL containerd pulls from instead, for pull and resolve.
	Host string
	// OverridePath makes Host the registry's API root as it is: containerd
	// appends the repository to it without adding /v2, which a mirror of
	// copies under a path of the local registry
	// (http://addr/v2/registry.k8s.io) needs.
	OverridePath bool
}

var hostsTemplate = template.Must(template.New("hosts.toml").Funcs(template.FuncMap{"q": strconv.Quote}).Parse(
	`server = {{q .Server}}

[host.{{q .Host}}]
  capabilities = ["pull", "resolve"]
{{- if .OverridePath}}
  override_path = true
{{- end}}
`))

// Render returns hosts.toml, or an error if Server or Host is not an http
// or https URL.
func (h Hosts) Render() ([]byte, error) {
	for _, u := range []field{{"server", h.Server}, {"host", h.Host}} {
		if err := checkURL(u.name, u.value); err != nil {
			return nil, fmt.Errorf("containerd hosts.toml: %w", err)
		}
	}
	var b bytes.Buffer
	if err := hostsTemplate.Execute(&b, h); err != nil {
		return nil, fmt.Errorf("containerd hosts.toml: %w", err)
	}
	return b.Bytes(), nil
}

// WriteHosts writes h as configPath/registry/hosts.toml, where containerd
// looks for the hosts of registry (a host[:port], as in image references)
// when its registry config_path is configPath.
func WriteHosts(configPath, registry string, h Hosts) error {
	if registry == "" || registry != filepath.Base(registry) || registry == "." || registry == ".." {
		return fmt.Errorf("containerd hosts.toml: registry %q is not a host[:port]", registry)
	}
	data, err := h.Render()
	if err != nil {
		return err
	}
	dir := filepath.Join(configPath, registry)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("containerd hosts.toml: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), data, 0o644); err != nil {
		return fmt.Errorf("containerd hosts.toml: %w", err)
	}
	return nil
}

func checkURL(name, s string) error {
	if err := checkString(name, s); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want an http or https URL", name, s)
	}
	return nil
}

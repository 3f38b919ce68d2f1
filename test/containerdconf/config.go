// Package containerdconf renders the configuration of the containerd the
// project compares criserver against (Debian's 1.6, version 2 config):
// config.toml and the hosts.toml files of its registry mirrors. The
// benchmark (hack/bench), the e2e framework (test/e2e/framework) and the
// local cluster (hack/cluster, through hack/containerdconf) all start
// containerd from what this package writes, so that what differs between
// them is an option here, not a copy of the file.
//
// containerd is never a dependency of the daemon: only test and benchmark
// tooling imports this package.
package containerdconf

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// DefaultCNIBinDir is where Debian's containernetworking-plugins package
// installs the CNI plugins, the ones criserver uses too.
const DefaultCNIBinDir = "/usr/lib/cni"

// Config is one containerd's configuration. Every path is absolute.
type Config struct {
	Root    string // containerd's root (content, snapshots, metadata)
	State   string // containerd's state (sockets of its own, netns mounts)
	Address string // the CRI (gRPC) socket
	// OptPath is the opt plugin's directory; set so that nothing is
	// written to the host's /opt/containerd.
	OptPath string
	// LogLevel is containerd's log level; empty leaves containerd's
	// default (info).
	LogLevel     string
	SandboxImage string
	CNIBinDir    string
	CNIConfDir   string
	// RegistryConfigPath is the directory of hosts.toml files (one
	// directory per registry host, see WriteHosts); empty configures none
	// and containerd pulls from the registries themselves.
	RegistryConfigPath string
	// Runtimes are the CRI runtime handlers, each runc through
	// containerd's runc v2 shim; the first is the default handler.
	Runtimes []Runtime
}

// Runtime is a runtime handler of containerd's CRI plugin.
type Runtime struct {
	Name   string // the handler name a RuntimeClass or a CRI request gives
	Binary string // the runc binary
	Root   string // runc's state directory (--root)
}

// Under is the configuration with everything under dir, as the benchmark
// and the e2e framework lay it out: root, state, opt, the socket and the CNI
// configuration in dir, runc's state in dir/state/runc (its default is
// /run/containerd/runc, shared with any other containerd) and one runtime
// handler, runc. The caller sets the sandbox image and what else differs.
func Under(dir, runc string) Config {
	return Config{
		Root:       filepath.Join(dir, "root"),
		State:      filepath.Join(dir, "state"),
		Address:    filepath.Join(dir, "containerd.sock"),
		OptPath:    filepath.Join(dir, "opt"),
		CNIBinDir:  DefaultCNIBinDir,
		CNIConfDir: filepath.Join(dir, "cni"),
		Runtimes:   []Runtime{{Name: "runc", Binary: runc, Root: filepath.Join(dir, "state", "runc")}},
	}
}

// configTemplate is fixed where every user agrees: no debug or metrics
// listener and TTRPC beside the CRI socket (an empty address is the
// socket's path + ".ttrpc"), the host's quirks (negative oom_score_adj is
// refused, hence restrict_oom_score_adj; systemd is not PID 1, hence
// cgroupfs), network namespaces under the state directory so that they go
// with it, the streaming server on loopback at a free port, one CNI
// network, overlayfs. enable_selinux and max_concurrent_downloads are
// containerd 1.6's defaults, written out so that the file says what the
// comparisons run with.
var configTemplate = template.Must(template.New("config.toml").Funcs(template.FuncMap{"q": strconv.Quote}).Parse(
	`version = 2
root = {{q .Root}}
state = {{q .State}}
oom_score = 0

[grpc]
  address = {{q .Address}}

[ttrpc]
  address = ""

[debug]
  address = ""
{{- if .LogLevel}}
  level = {{q .LogLevel}}
{{- end}}

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = {{q .OptPath}}

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = {{q .SandboxImage}}
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    max_concurrent_downloads = 3

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = {{q .CNIBinDir}}
      conf_dir = {{q .CNIConfDir}}
      max_conf_num = 1

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = {{q (index .Runtimes 0).Name}}
{{- range .Runtimes}}

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{{.Name}}]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{{.Name}}.options]
          BinaryName = {{q .Binary}}
          Root = {{q .Root}}
          SystemdCgroup = false
{{- end}}
{{- if .RegistryConfigPath}}

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = {{q .RegistryConfigPath}}
{{- end}}
`))

// Render returns config.toml, or an error naming the first option that is
// missing or invalid.
func (c Config) Render() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("containerd config: %w", err)
	}
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("containerd config: %w", err)
	}
	return b.Bytes(), nil
}

// logLevels are the levels containerd 1.6 accepts.
var logLevels = map[string]bool{"": true, "trace": true, "debug": true, "info": true, "warn": true, "error": true, "fatal": true, "panic": true}

// handlerName is what a runtime name may be: it is a bare TOML key in the
// rendered file, and a Kubernetes RuntimeClass handler is a DNS label.
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// field is an option's name, for errors, and its value.
type field struct{ name, value string }

func (c Config) validate() error {
	paths := []field{
		{"root", c.Root}, {"state", c.State}, {"address", c.Address}, {"opt path", c.OptPath},
		{"CNI bin dir", c.CNIBinDir}, {"CNI conf dir", c.CNIConfDir},
	}
	if c.RegistryConfigPath != "" {
		paths = append(paths, field{"registry config path", c.RegistryConfigPath})
	}
	if len(c.Runtimes) == 0 {
		return errors.New("no runtime handler")
	}
	seen := map[string]bool{}
	for _, r := range c.Runtimes {
		if !handlerName.MatchString(r.Name) {
			return fmt.Errorf("runtime handler name %q: want lower-case letters, digits and '-'", r.Name)
		}
		if seen[r.Name] {
			return fmt.Errorf("runtime handler %q twice", r.Name)
		}
		seen[r.Name] = true
		paths = append(paths, field{r.Name + " binary", r.Binary}, field{r.Name + " root", r.Root})
	}
	for _, p := range paths {
		if err := checkPath(p.name, p.value); err != nil {
			return err
		}
	}
	if c.SandboxImage == "" {
		return errors.New("no sandbox image")
	}
	if err := checkString("sandbox image", c.SandboxImage); err != nil {
		return err
	}
	if !logLevels[c.LogLevel] {
		return fmt.Errorf("log level %q: want trace, debug, info, warn, error, fatal or panic", c.LogLevel)
	}
	return nil
}

func checkPath(name, p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%s %q: want an absolute path", name, p)
	}
	return checkString(name, p)
}

// checkString refuses what strconv.Quote would write as an escape TOML
// lacks (\x, \a, \v): control characters and invalid UTF-8.
func checkString(name, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q: not UTF-8", name, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s %q: control character %U", name, s, r)
		}
	}
	return nil
}

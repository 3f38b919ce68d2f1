package oci

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
)

// Runtime handler names every daemon knows.
const (
	HandlerRunc = "runc"
	HandlerCrun = "crun"
)

// fallbackHandler runs the pods whose RuntimeHandler is "" when
// default_handler is empty and crun cannot run here. Records written before
// the default could be crun name "" for it.
const fallbackHandler = HandlerRunc

// Handler is one OCI runtime a pod may name in RuntimeHandler.
type Handler struct {
	// RuntimePath is the runtime binary; a bare name is looked up in PATH.
	// Empty means the handler's name ("crun" runs crun).
	RuntimePath string `toml:"runtime_path"`
	// RuntimeRoot is the runtime's state directory (its --root). Empty
	// means <state>/<handler name>.
	RuntimeRoot string `toml:"runtime_root"`
}

// Config is the [runtime] section of the daemon configuration.
type Config struct {
	// Handlers maps handler names to runtimes. "runc" and "crun" are
	// always present unless overridden.
	Handlers map[string]Handler `toml:"handlers"`
	// DefaultHandler names the handler of pods whose RuntimeHandler is "".
	// Empty picks crun where it is installed and can run containers on this
	// host (4-5x faster than runc per container start), else runc.
	DefaultHandler string `toml:"default_handler"`
	// ConmonPath is the conmon binary; a bare name is looked up in PATH.
	ConmonPath string `toml:"conmon_path"`
	// LogSizeMax caps each container log file in bytes (conmon truncates
	// and restarts it); 0 or negative means unlimited.
	LogSizeMax int64 `toml:"log_size_max"`
	// ImageVolumes is what image-declared volumes become: mkdir, bind or ignore.
	ImageVolumes string `toml:"image_volumes"`
}

// DefaultConfig is what a node without a config file gets.
func DefaultConfig() Config {
	return Config{
		Handlers: map[string]Handler{
			HandlerRunc: {RuntimePath: "runc"},
			HandlerCrun: {RuntimePath: "crun"},
		},
		ConmonPath:   "conmon",
		ImageVolumes: ImageVolumesMkdir,
	}
}

// HasHandler tells whether a pod may name this runtime handler; "" is
// always the default one.
func (c Config) HasHandler(name string) bool {
	_, ok := c.Handlers[name]
	return ok || name == ""
}

// HandlerNames lists the configured handlers, sorted.
func (c Config) HandlerNames() []string {
	names := make([]string, 0, len(c.Handlers))
	for n := range c.Handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validate names the offending key. It does not look for binaries: a
// missing crun must not stop a node that only runs runc.
func (c Config) Validate() error {
	if c.DefaultHandler != "" {
		if _, ok := c.Handlers[c.DefaultHandler]; !ok {
			return fmt.Errorf("default_handler: %q is not a configured handler", c.DefaultHandler)
		}
	} else if _, ok := c.Handlers[fallbackHandler]; !ok {
		return fmt.Errorf("handlers: %q must be configured while default_handler is empty: it is the default where crun cannot run", fallbackHandler)
	}
	for name, h := range c.Handlers {
		if name == "" {
			return fmt.Errorf("handlers: the empty name is reserved for the default handler (default_handler)")
		}
		if h.RuntimeRoot != "" && !filepath.IsAbs(h.RuntimeRoot) {
			return fmt.Errorf("handlers.%s.runtime_root: %q is not an absolute path", name, h.RuntimeRoot)
		}
	}
	if c.ConmonPath == "" {
		return fmt.Errorf("conmon_path: must be set")
	}
	switch c.ImageVolumes {
	case ImageVolumesMkdir, ImageVolumesBind, ImageVolumesIgnore:
	default:
		return fmt.Errorf("image_volumes: %q is not one of mkdir, bind, ignore", c.ImageVolumes)
	}
	return nil
}

// FillDerived sets the runtime roots that follow from the state directory,
// so that moving --state moves the runtimes' state with it.
func (c *Config) FillDerived(stateDir string) {
	for name, h := range c.Handlers {
		if h.RuntimePath == "" {
			h.RuntimePath = name
		}
		if h.RuntimeRoot == "" {
			h.RuntimeRoot = filepath.Join(stateDir, name)
		}
		c.Handlers[name] = h
	}
}

// handler returns the handler configured as name; name must be resolved
// ("" is not a handler here: Runtime.ResolveHandler maps it).
func (c Config) handler(name string) (Handler, error) {
	h, ok := c.Handlers[name]
	if !ok {
		return Handler{}, fmt.Errorf("runtime handler %q is not configured", name)
	}
	return h, nil
}

// lookPath resolves a bare binary name through PATH and leaves paths alone.
func lookPath(p string) (string, error) {
	if filepath.IsAbs(p) {
		return p, nil
	}
	return exec.LookPath(p)
}

package oci

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cgroups"
)

// defaultChoice is the handler that runs pods whose RuntimeHandler is "",
// and why it was chosen; decided once at start.
type defaultChoice struct {
	handler string
	reason  string
}

// chooseDefaultHandler picks the default handler: the configured one, or
// else crun when it is configured, installed and able to run containers on
// this host (its cgroup layout is one crun accepts), or else runc. cgroupRoot
// is where the cgroup hierarchies are mounted.
func chooseDefaultHandler(ctx context.Context, cfg Config, cgroupRoot string) defaultChoice {
	if cfg.DefaultHandler != "" {
		return defaultChoice{handler: cfg.DefaultHandler, reason: "default_handler is set"}
	}
	if err := crunUsable(ctx, cfg, cgroupRoot); err != nil {
		return defaultChoice{handler: fallbackHandler, reason: err.Error()}
	}
	return defaultChoice{handler: HandlerCrun, reason: "crun is installed and runs on this host"}
}

// crunUsable says why the crun handler cannot be the default here, or nil.
func crunUsable(ctx context.Context, cfg Config, cgroupRoot string) error {
	h, ok := cfg.Handlers[HandlerCrun]
	if !ok {
		return fmt.Errorf("no %q handler is configured", HandlerCrun)
	}
	path, err := lookPath(h.RuntimePath)
	if err != nil {
		return fmt.Errorf("crun not found: %w", err)
	}
	if held := cgroups.HybridUnifiedControllers(cgroupRoot); len(held) > 0 {
		return fmt.Errorf("crun refuses this hybrid cgroup host: the cgroup2 hierarchy holds %s (hack/hybrid-cgroups.sh mounts them as v1)",
			strings.Join(held, ", "))
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput(); err != nil {
		return fmt.Errorf("%s --version: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// logDefaultHandler says at start which runtime the default handler uses;
// falling back from crun is a warning, never silent.
func logDefaultHandler(cfg Config, c defaultChoice) {
	path := cfg.Handlers[c.handler].RuntimePath
	if c.handler == fallbackHandler && cfg.DefaultHandler == "" {
		klog.Warningf("Default runtime handler falls back to %s (%s): %s", c.handler, path, c.reason)
		return
	}
	klog.InfoS("Default runtime handler", "handler", c.handler, "runtimePath", path, "reason", c.reason)
}

// ResolveHandler maps a pod's RuntimeHandler to a configured handler name:
// "" is the default handler chosen at start.
func (r *Runtime) ResolveHandler(name string) string {
	if name == "" {
		return r.def.handler
	}
	return name
}

// DefaultHandler is the handler behind "" and why it was chosen.
func (r *Runtime) DefaultHandler() (handler, reason string) {
	return r.def.handler, r.def.reason
}

// handler returns the configuration of a pod's handler, "" resolved.
func (r *Runtime) handler(name string) (Handler, error) {
	return r.cfg.handler(r.ResolveHandler(name))
}

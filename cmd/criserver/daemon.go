package main

import (
	"context"
	"fmt"

	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/cri"
	"github.com/criserver/criserver/sandbox"
)

// newService builds the packages that do the work and the CRI service over
// them. The returned func releases what they hold.
func newService(ctx context.Context, cfg Config) (*cri.Service, func(), error) {
	network, err := cni.NewManager(cfg.CNI)
	if err != nil {
		return nil, nil, fmt.Errorf("set up CNI: %w", err)
	}
	sandboxes, err := sandbox.New(ctx, sandbox.Options{
		Root:         cfg.Root,
		State:        cfg.State,
		CgroupDriver: cfg.CgroupDriver,
		Network:      network,
		HasHandler:   cfg.Runtime.HasHandler,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load pod sandboxes: %w", err)
	}
	svc := cri.New(cri.Options{
		Version:      version,
		CgroupDriver: cri.CgroupDriver(cfg.CgroupDriver),
		Network:      network,
		Sandboxes:    sandboxes,
	})
	return svc, func() {}, nil
}

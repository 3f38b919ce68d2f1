package main

import (
	"context"
	"fmt"

	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/cri"
)

// newService builds the packages that do the work and the CRI service over
// them. The returned func releases what they hold.
func newService(ctx context.Context, cfg Config) (*cri.Service, func(), error) {
	network, err := cni.NewManager(cfg.CNI)
	if err != nil {
		return nil, nil, fmt.Errorf("set up CNI: %w", err)
	}
	svc := cri.New(cri.Options{
		Version:      version,
		CgroupDriver: cri.CgroupDriver(cfg.CgroupDriver),
		Network:      network,
	})
	return svc, func() {}, nil
}

package main

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/cri"
	"github.com/criserver/criserver/imagestore"
	"github.com/criserver/criserver/nri"
	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/sandbox"
	"github.com/criserver/criserver/streaming"
)

// newService builds the packages that do the work and the CRI service over
// them. The returned func releases what they hold.
func newService(ctx context.Context, cfg Config) (*cri.Service, func(), error) {
	driver := cgroups.Driver(cfg.CgroupDriver) // validated with the config
	network, err := cni.NewManager(cfg.CNI)
	if err != nil {
		return nil, nil, fmt.Errorf("set up CNI: %w", err)
	}
	plugins, err := nri.New(cfg.NRI, version)
	if err != nil {
		return nil, nil, err
	}
	sandboxes, err := sandbox.New(ctx, sandbox.Options{
		Root:         cfg.Root,
		State:        cfg.State,
		CgroupDriver: driver,
		Network:      network,
		HasHandler:   cfg.Runtime.HasHandler,
		ShmSize:      cfg.Sandbox.ShmSize,
		InfraBinary:  cfg.Sandbox.InfraBinary,
		BeforeListed: plugins.RunPodSandbox,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load pod sandboxes: %w", err)
	}
	images, err := imagestore.New(ctx, cfg.Image, cfg.Root)
	if err != nil {
		return nil, nil, fmt.Errorf("load image store: %w", err)
	}
	rt, err := oci.NewRuntime(ctx, cfg.Runtime, cfg.State, driver)
	if err != nil {
		return nil, nil, fmt.Errorf("set up container runtime: %w", err)
	}
	if err := rt.RemoveStaleExecDirs(); err != nil {
		return nil, nil, err
	}
	stream, err := streaming.NewServer(cfg.Stream)
	if err != nil {
		return nil, nil, fmt.Errorf("set up stream server: %w", err)
	}
	svc := cri.New(cri.Options{
		Version:      version,
		CgroupDriver: driver,
		Network:      network,
		Sandboxes:    sandboxes,
		Images:       images,
		Runtime:      rt,
		Root:         cfg.Root,
		Streaming:    stream,
		PodMetrics:   cfg.Stats.Families(),
		NRI:          plugins,
	})
	stopStream := func() {
		if err := stream.Stop(); err != nil {
			klog.ErrorS(err, "Stop the stream server")
		}
	}
	if err := stream.Start(svc.StreamRuntime()); err != nil {
		stopStream()
		return nil, nil, err
	}
	// The exit watcher runs until the service is released.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	if err := svc.LoadContainers(watchCtx); err != nil {
		stopWatch()
		stopStream()
		return nil, nil, fmt.Errorf("load containers: %w", err)
	}
	// Plugins synchronize with the pods and containers just loaded.
	if err := plugins.Start(svc.NRIRuntime()); err != nil {
		stopWatch()
		stopStream()
		return nil, nil, err
	}
	return svc, func() {
		plugins.Stop()
		stopStream()
		stopWatch()
		// Leave no removed layer for the next start to delete.
		images.WaitRemovals()
	}, nil
}

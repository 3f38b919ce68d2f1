package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/oci"
)

// Version implements runtime.RuntimeServiceServer.
func (s *Service) Version(context.Context, *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       RuntimeName,
		RuntimeVersion:    s.opts.Version,
		RuntimeApiVersion: "v1",
	}, nil
}

// Status implements runtime.RuntimeServiceServer.
func (s *Service) Status(ctx context.Context, req *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	runtimeReady := &runtime.RuntimeCondition{Type: runtime.RuntimeReady, Status: true}
	networkReady := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	if err := s.opts.Network.Ready(); err != nil {
		networkReady.Status = false
		networkReady.Reason = "NetworkPluginNotReady"
		networkReady.Message = "Network plugin returns error: " + err.Error()
	}
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{
			Conditions: []*runtime.RuntimeCondition{runtimeReady, networkReady},
		},
		RuntimeHandlers: s.containerRuntimeHandlers(ctx),
		Features:        containerRuntimeFeatures(),
	}
	if req.GetVerbose() {
		resp.Info = map[string]string{"cgroupDriver": string(s.opts.CgroupDriver)}
		if s.opts.Runtime != nil {
			h, why := s.opts.Runtime.DefaultHandler()
			resp.Info["defaultRuntimeHandler"] = h
			resp.Info["defaultRuntimeHandlerReason"] = why
		}
		if cidr := s.podCIDR.Load(); cidr != nil {
			resp.Info["podCIDR"] = *cidr
		}
		if s.opts.Runtime != nil {
			// What each handler's runtime reported, idmap mounts included
			// ("" is the default handler, as in runtime_handlers).
			feats := map[string]oci.Features{}
			for _, n := range append([]string{""}, s.opts.Runtime.Config().HandlerNames()...) {
				feats[n] = s.opts.Runtime.Features(ctx, n)
			}
			if b, err := json.Marshal(feats); err == nil {
				resp.Info["runtimeHandlerFeatures"] = string(b)
			}
		}
	}
	return resp, nil
}

// UpdateRuntimeConfig implements runtime.RuntimeServiceServer. The kubelet
// sends the node's pod CIDR once it knows it. Pod addresses come from the
// CNI configuration's IPAM, so the CIDR is checked and kept for Status
// (verbose) only, as CRI-O does; a runtime that renders its CNI
// configuration from the CIDR (containerd's template) would use it here.
func (s *Service) UpdateRuntimeConfig(_ context.Context, req *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	cidrs := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidrs == "" {
		return &runtime.UpdateRuntimeConfigResponse{}, nil
	}
	for _, c := range strings.Split(cidrs, ",") {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			return nil, fmt.Errorf("%w: pod CIDR %q: %v", errInvalidArgument, c, err)
		}
	}
	if old := s.podCIDR.Swap(&cidrs); old == nil || *old != cidrs {
		klog.InfoS("Pod CIDR from the kubelet", "podCIDR", cidrs)
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}

// RuntimeConfig implements runtime.RuntimeServiceServer.
func (s *Service) RuntimeConfig(context.Context, *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if s.opts.CgroupDriver == cgroups.Systemd {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{
		Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver},
	}, nil
}

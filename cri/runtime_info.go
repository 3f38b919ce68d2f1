package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
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
	}
	return resp, nil
}

// RuntimeConfig implements runtime.RuntimeServiceServer.
func (s *Service) RuntimeConfig(context.Context, *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if s.opts.CgroupDriver == CgroupDriverSystemd {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{
		Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver},
	}, nil
}

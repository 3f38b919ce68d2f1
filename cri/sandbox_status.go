package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/sandbox"
)

// PodSandboxStatus implements runtime.RuntimeServiceServer from the
// in-memory index.
func (s *Service) PodSandboxStatus(_ context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, fmt.Errorf("%w: pod sandbox ID is required", errInvalidArgument)
	}
	sb, err := s.opts.Sandboxes.Get(id)
	if err != nil {
		return nil, err
	}
	resp := &runtime.PodSandboxStatusResponse{
		Status:             podStatus(sb),
		ContainersStatuses: s.containers.podStatuses(id),
		Timestamp:          time.Now().UnixNano(),
	}
	if req.GetVerbose() {
		info, err := json.Marshal(verboseInfo(sb))
		if err != nil {
			return nil, fmt.Errorf("%w: encode pod %s info: %v", errInternal, id, err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func podState(st sandbox.State) runtime.PodSandboxState {
	if st == sandbox.StateReady {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}

func podStatus(sb *sandbox.Sandbox) *runtime.PodSandboxStatus {
	cfg := sb.Config
	st := &runtime.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       cfg.GetMetadata(),
		State:          podState(sb.State),
		CreatedAt:      sb.CreatedAt.UnixNano(),
		Labels:         cfg.GetLabels(),
		Annotations:    cfg.GetAnnotations(),
		RuntimeHandler: sb.RuntimeHandler,
		Linux: &runtime.LinuxPodSandboxStatus{
			Namespaces: &runtime.Namespace{Options: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()},
		},
	}
	if !sb.HostNetwork && sb.State == sandbox.StateReady && len(sb.IPs) > 0 {
		st.Network = &runtime.PodSandboxNetworkStatus{Ip: sb.IPs[0]}
		for _, ip := range sb.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip})
		}
	}
	return st
}

// podInfo is the verbose status of a pod: how it is made up on the host.
type podInfo struct {
	InfraPID       int                       `json:"pid,omitempty"`
	RuntimeHandler string                    `json:"runtimeHandler"`
	NetNSPath      string                    `json:"netNamespacePath,omitempty"`
	IPCNSPath      string                    `json:"ipcNamespacePath,omitempty"`
	UTSNSPath      string                    `json:"utsNamespacePath,omitempty"`
	PIDNSPath      string                    `json:"pidNamespacePath,omitempty"`
	CgroupParent   string                    `json:"cgroupParent"`
	Hostname       string                    `json:"hostname"`
	HostnamePath   string                    `json:"hostnamePath,omitempty"`
	ResolvConfPath string                    `json:"resolvConfPath,omitempty"`
	HostsPath      string                    `json:"hostsPath,omitempty"`
	ShmPath        string                    `json:"shmPath,omitempty"`
	IPs            []string                  `json:"ips,omitempty"`
	Config         *runtime.PodSandboxConfig `json:"config"`
}

func verboseInfo(sb *sandbox.Sandbox) podInfo {
	return podInfo{
		InfraPID: sb.InfraPID, RuntimeHandler: sb.RuntimeHandler,
		NetNSPath: sb.NetNSPath, IPCNSPath: sb.IPCNSPath, UTSNSPath: sb.UTSNSPath, PIDNSPath: sb.PIDNSPath,
		CgroupParent: sb.CgroupParent, Hostname: sb.Hostname, HostnamePath: sb.HostnamePath,
		ResolvConfPath: sb.ResolvConfPath, HostsPath: sb.HostsPath, ShmPath: sb.ShmPath,
		IPs: sb.IPs, Config: sb.Config,
	}
}

// ListPodSandbox implements runtime.RuntimeServiceServer from the
// in-memory index. The ID filter matches a prefix, as crictl expects.
func (s *Service) ListPodSandbox(_ context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	resp := &runtime.ListPodSandboxResponse{}
	for _, sb := range s.opts.Sandboxes.List() {
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != podState(sb.State) {
			continue
		}
		if !labelsMatch(sb.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		resp.Items = append(resp.Items, &runtime.PodSandbox{
			Id:             sb.ID,
			Metadata:       sb.Config.GetMetadata(),
			State:          podState(sb.State),
			CreatedAt:      sb.CreatedAt.UnixNano(),
			Labels:         sb.Config.GetLabels(),
			Annotations:    sb.Config.GetAnnotations(),
			RuntimeHandler: sb.RuntimeHandler,
		})
	}
	return resp, nil
}

// labelsMatch tells whether labels hold every key=value of selector.
func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

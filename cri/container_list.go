package cri

import (
	"context"
	"encoding/json"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainers implements runtime.RuntimeServiceServer. It answers from
// the in-memory index alone.
func (s *Service) ListContainers(_ context.Context, req *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	f := req.GetFilter()
	var out []*runtime.Container
	for _, c := range s.containers.list() {
		if !matchContainer(c, f) {
			continue
		}
		out = append(out, c.toContainer())
	}
	return &runtime.ListContainersResponse{Containers: out}, nil
}

// matchContainer applies a ListContainers filter: ID prefix, pod, state
// and labels.
func matchContainer(c *containerRecord, f *runtime.ContainerFilter) bool {
	if f == nil {
		return true
	}
	if f.GetId() != "" && !strings.HasPrefix(c.ID, f.GetId()) {
		return false
	}
	if f.GetPodSandboxId() != "" && !strings.HasPrefix(c.PodID, f.GetPodSandboxId()) {
		return false
	}
	if f.GetState() != nil && c.State() != f.GetState().GetState() {
		return false
	}
	return matchLabels(c.Config.GetLabels(), f.GetLabelSelector())
}

func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ContainerStatus implements runtime.RuntimeServiceServer.
func (s *Service) ContainerStatus(_ context.Context, req *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	s.refreshContainer(c)
	resp := &runtime.ContainerStatusResponse{Status: c.toStatus()}
	if req.GetVerbose() {
		resp.Info = s.containerInfo(c)
	}
	return resp, nil
}

// containerInfo is the verbose status: how the container is run.
func (s *Service) containerInfo(c *containerRecord) map[string]string {
	attach, ctl := s.opts.Runtime.AttachPaths(c.ID)
	info := map[string]any{
		"sandboxID":      c.PodID,
		"pid":            c.Pid(),
		"runtimeHandler": c.Handler,
		"bundle":         s.opts.Runtime.BundleDir(c.ID),
		"cgroupsPath":    c.CgroupsPath,
		"conmonPid":      s.opts.Runtime.ConmonPid(c.ID),
		"attachSocket":   attach,
		"controlFifo":    ctl,
		"imageRef":       c.Image.Ref,
		"config":         c.Config,
	}
	if wl := s.writableLayerInfo(c.ID); wl != nil {
		info["writableLayer"] = wl
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil
	}
	return map[string]string{"info": string(b)}
}

// writableLayerInfo is the writable layer's usage as the stats refresher
// last measured it; nil before the first measurement. Status never walks.
func (s *Service) writableLayerInfo(id string) map[string]any {
	if s.opts.Images == nil {
		return nil
	}
	u, at, ok := s.opts.Images.CachedRootfsUsage(id)
	if !ok {
		return nil
	}
	return map[string]any{"usedBytes": u.Bytes, "inodesUsed": u.Inodes, "measuredAt": at}
}

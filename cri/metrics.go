package cri

import (
	"context"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/podmetrics"
	"github.com/criserver/criserver/sandbox"
)

// The CRI metrics calls serve cAdvisor's metric families (podmetrics) for
// the kubelet's /metrics/cadvisor, from the samples the stats refresher
// keeps (stats.go): the pod's cgroup and network namespace, each running
// container's cgroup and writable layer. The refresher reads the
// families' figures only while metrics calls come (metricsIdle); the
// first call after a pause reads them itself. Only ready pods and running
// containers have metrics, as only they have cgroups.

// ListMetricDescriptors implements runtime.RuntimeServiceServer.
func (s *Service) ListMetricDescriptors(context.Context, *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	return &runtime.ListMetricDescriptorsResponse{Descriptors: s.opts.PodMetrics.Descriptors()}, nil
}

// ListPodSandboxMetrics implements runtime.RuntimeServiceServer.
func (s *Service) ListPodSandboxMetrics(ctx context.Context, _ *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	pods, err := s.podSandboxMetrics(ctx)
	if err != nil {
		return nil, err
	}
	return &runtime.ListPodSandboxMetricsResponse{PodMetrics: pods}, nil
}

// StreamPodSandboxMetrics implements runtime.RuntimeServiceServer.
func (s *Service) StreamPodSandboxMetrics(_ *runtime.StreamPodSandboxMetricsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxMetricsResponse]) error {
	pods, err := s.podSandboxMetrics(stream.Context())
	if err != nil {
		return err
	}
	return sendInBatches(pods, func(b []*runtime.PodSandboxMetrics) *runtime.StreamPodSandboxMetricsResponse {
		return &runtime.StreamPodSandboxMetricsResponse{PodSandboxMetrics: b}
	}, stream.Send)
}

func (s *Service) podSandboxMetrics(ctx context.Context) ([]*runtime.PodSandboxMetrics, error) {
	s.stats.metricsAsked()
	var out []*runtime.PodSandboxMetrics
	for _, sb := range s.opts.Sandboxes.List() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if sb.State != sandbox.StateReady {
			continue
		}
		out = append(out, s.podMetrics(sb))
	}
	return out, nil
}

// podMetrics is one pod's metrics: its cgroup's and network's at pod level
// (container=""), and those of each running container.
func (s *Service) podMetrics(sb *sandbox.Sandbox) *runtime.PodSandboxMetrics {
	md := sb.Metadata()
	labels := podmetrics.Labels{Namespace: md.GetNamespace(), Pod: md.GetName()}
	in := &podmetrics.Input{Labels: labels, Created: sb.CreatedAt}
	if sb.CgroupParent != "" {
		in.Labels.ID = cgroups.RelPath(sb.CgroupParent)
		if sample, err := s.stats.get(sb.ID, sb.CgroupParent, s.podNetPID(sb), true); err == nil {
			in.Stats, in.Network, in.NetworkAt = sample.cur, sample.net, sample.cur.Timestamp
		} else {
			klog.V(4).InfoS("No cgroup sample for pod metrics", "podID", sb.ID, "err", err)
		}
	}
	pm := &runtime.PodSandboxMetrics{PodSandboxId: sb.ID, Metrics: s.opts.PodMetrics.Metrics(in)}
	for _, c := range s.containers.byPod(sb.ID) {
		if c.State() != runtime.ContainerState_CONTAINER_RUNNING {
			continue
		}
		pm.ContainerMetrics = append(pm.ContainerMetrics, &runtime.ContainerMetrics{
			ContainerId: c.ID,
			Metrics:     s.opts.PodMetrics.Metrics(s.containerMetricsInput(c, labels)),
		})
	}
	return pm
}

func (s *Service) containerMetricsInput(c *containerRecord, pod podmetrics.Labels) *podmetrics.Input {
	in := &podmetrics.Input{Labels: pod, Created: c.CreatedAt, Started: c.StartedAt(), DeviceName: s.blockDevs.name}
	in.Labels.Container = c.Config.GetMetadata().GetName()
	in.Labels.ID = cgroups.RelPath(c.CgroupsPath)
	in.Labels.Image = c.imageSpec().Image
	in.Labels.Name = c.ID
	if sample, err := s.stats.get(c.ID, c.CgroupsPath, 0, true); err == nil {
		in.Stats = sample.cur
	} else {
		klog.V(4).InfoS("No cgroup sample for container metrics", "containerID", c.ID, "err", err)
	}
	if s.opts.PodMetrics.Has(podmetrics.Disk) && s.opts.Images != nil {
		if used, _, err := s.opts.Images.RootfsUsage(c.ID, statsMaxAge); err == nil {
			in.Fs = s.layerFS.usage(used)
		} else {
			klog.V(4).InfoS("No writable layer usage for container metrics", "containerID", c.ID, "err", err)
		}
	}
	return in
}

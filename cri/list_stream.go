package cri

import (
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The Stream* list calls (CRI v0.37, KEP 5825, kubelet gate
// CRIListStreaming) answer what their unary List counterparts answer, in
// messages of up to streamBatch entries, so that a node's list never has
// to fit in one gRPC message. No match sends no message; the stream just
// ends. StreamContainers (wire.go) sends cached encodings instead.

// streamBatch is how many entries one message of a Stream* list call carries.
const streamBatch = 100

// sendInBatches sends items in messages of up to streamBatch, made by msg.
func sendInBatches[T, M any](items []T, msg func([]T) *M, send func(*M) error) error {
	for len(items) > 0 {
		n := min(streamBatch, len(items))
		if err := send(msg(items[:n])); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// StreamPodSandboxes implements runtime.RuntimeServiceServer.
func (s *Service) StreamPodSandboxes(req *runtime.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxesResponse]) error {
	resp, err := s.ListPodSandbox(stream.Context(), &runtime.ListPodSandboxRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendInBatches(resp.Items, func(b []*runtime.PodSandbox) *runtime.StreamPodSandboxesResponse {
		return &runtime.StreamPodSandboxesResponse{PodSandboxes: b}
	}, stream.Send)
}

// StreamContainerStats implements runtime.RuntimeServiceServer.
func (s *Service) StreamContainerStats(req *runtime.StreamContainerStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamContainerStatsResponse]) error {
	resp, err := s.ListContainerStats(stream.Context(), &runtime.ListContainerStatsRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendInBatches(resp.Stats, func(b []*runtime.ContainerStats) *runtime.StreamContainerStatsResponse {
		return &runtime.StreamContainerStatsResponse{ContainerStats: b}
	}, stream.Send)
}

// StreamPodSandboxStats implements runtime.RuntimeServiceServer.
func (s *Service) StreamPodSandboxStats(req *runtime.StreamPodSandboxStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxStatsResponse]) error {
	resp, err := s.ListPodSandboxStats(stream.Context(), &runtime.ListPodSandboxStatsRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendInBatches(resp.Stats, func(b []*runtime.PodSandboxStats) *runtime.StreamPodSandboxStatsResponse {
		return &runtime.StreamPodSandboxStatsResponse{PodSandboxStats: b}
	}, stream.Send)
}

// StreamImages implements runtime.ImageServiceServer.
func (s *Service) StreamImages(req *runtime.StreamImagesRequest, stream grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	resp, err := s.ListImages(stream.Context(), &runtime.ListImagesRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendInBatches(resp.Images, func(b []*runtime.Image) *runtime.StreamImagesResponse {
		return &runtime.StreamImagesResponse{Images: b}
	}, stream.Send)
}

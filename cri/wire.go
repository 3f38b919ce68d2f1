package cri

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// NewServer returns a gRPC server serving both CRI services and
// criserver's image import (image_import.go). Its codec
// sends wireMessage replies as they are, so that ListContainers can reply
// from per-container encodings cached in memory instead of building and
// marshalling every container on each of the kubelet's relists.
func (s *Service) NewServer(opts ...grpc.ServerOption) *grpc.Server {
	codec := wireCodec{proto: encoding.GetCodecV2(protocodec.Name)}
	srv := grpc.NewServer(append(opts, grpc.ForceServerCodecV2(codec))...)
	desc := runtime.RuntimeService_ServiceDesc
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == "ListContainers" {
			desc.Methods[i].Handler = s.listContainersHandler
		}
	}
	srv.RegisterService(&desc, s)
	runtime.RegisterImageServiceServer(srv, s)
	srv.RegisterService(&importServiceDesc, s)
	return srv
}

// wireMessage is a reply already in protobuf wire form. Its buffer comes
// from gRPC's pool and goes back to it once sent: a fresh quarter-megabyte
// reply per call costs page faults and GC work that showed as
// millisecond stalls on a small node.
type wireMessage struct{ buf mem.Buffer }

// wireCodec is gRPC's proto codec, except that it sends a wireMessage
// unchanged.
type wireCodec struct{ proto encoding.CodecV2 }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(wireMessage); ok {
		return mem.BufferSlice{w.buf}, nil
	}
	return c.proto.Marshal(v)
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (c wireCodec) Name() string { return c.proto.Name() }

// listContainersHandler is the generated ListContainers handler with a
// reply in wire form; interceptors see the request and error as usual.
// Its parameters are grpc.MethodHandler's, which puts ctx second.
//
//nolint:revive // context-as-argument: the signature is grpc's.
func (s *Service) listContainersHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(runtime.ListContainersRequest)
	if err := dec(req); err != nil {
		return nil, err
	}
	handler := func(ctx context.Context, req any) (any, error) {
		return s.listContainersWire(req.(*runtime.ListContainersRequest))
	}
	if interceptor == nil {
		return handler(ctx, req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: runtime.RuntimeService_ListContainers_FullMethodName}
	return interceptor(ctx, req, info, handler)
}

// containersField is the field number of the containers in both
// ListContainersResponse and StreamContainersResponse (the same layout).
var containersField = (&runtime.ListContainersResponse{}).ProtoReflect().Descriptor().Fields().ByName("containers").Number()

// listContainersWire is ListContainers in wire form: the concatenation of
// each matching container's cached encoding.
func (s *Service) listContainersWire(req *runtime.ListContainersRequest) (wireMessage, error) {
	entries, err := s.matchingWire(req.GetFilter())
	if err != nil {
		return wireMessage{}, err
	}
	return wireContainers(entries), nil
}

// StreamContainers implements runtime.RuntimeServiceServer: ListContainers
// in messages of up to streamBatch containers, for nodes whose list would
// not fit in one gRPC message (KEP 5825, kubelet gate CRIListStreaming).
// No match sends no message; the stream just ends.
func (s *Service) StreamContainers(req *runtime.StreamContainersRequest, stream grpc.ServerStreamingServer[runtime.StreamContainersResponse]) error {
	entries, err := s.matchingWire(req.GetFilter())
	if err != nil {
		return err
	}
	// The server's codec (NewServer) sends a wireMessage as it is.
	return sendInBatches(entries, func(b [][]byte) *wireMessage {
		w := wireContainers(b)
		return &w
	}, func(w *wireMessage) error { return stream.SendMsg(*w) })
}

// matchingWire returns the cached encodings of the containers f selects,
// oldest first.
func (s *Service) matchingWire(f *runtime.ContainerFilter) ([][]byte, error) {
	var entries [][]byte
	for _, c := range s.containers.list() {
		if !matchContainer(c, f) {
			continue
		}
		b, err := c.wireContainer()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errInternal, err)
		}
		entries = append(entries, b)
	}
	return entries, nil
}

// wireContainers encodes entries as the containers field of a list reply.
func wireContainers(entries [][]byte) wireMessage {
	size := 0
	for _, b := range entries {
		size += protowire.SizeTag(containersField) + protowire.SizeBytes(len(b))
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	out := (*buf)[:0]
	for _, b := range entries {
		out = protowire.AppendTag(out, containersField, protowire.BytesType)
		out = protowire.AppendBytes(out, b)
	}
	*buf = out
	return wireMessage{buf: mem.NewBuffer(buf, pool)}
}

// wireContainer returns c's ListContainers entry in wire form, encoded
// once per state: nothing else in it changes after creation.
func (c *containerRecord) wireContainer() ([]byte, error) {
	c.mu.Lock()
	if c.wire != nil && c.wireState == c.state {
		b := c.wire
		c.mu.Unlock()
		return b, nil
	}
	c.mu.Unlock()
	m := c.toContainer()
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode container %s: %w", c.ID, err)
	}
	c.mu.Lock()
	if c.state == m.State { // not cached if it changed meanwhile
		c.wire, c.wireState = b, m.State
	}
	c.mu.Unlock()
	return b, nil
}

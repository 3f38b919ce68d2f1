package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// replySize receives a reply without decoding it, keeping only its length.
type replySize int

// replyBytes receives a reply without decoding it, keeping its bytes.
type replyBytes []byte

// undecodedCodec encodes requests as gRPC's proto codec does and leaves
// replies undecoded.
type undecodedCodec struct{}

func (undecodedCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("undecoded codec: cannot encode %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (undecodedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch r := v.(type) {
	case *replySize:
		*r = replySize(data.Len())
	case *replyBytes:
		*r = data.Materialize()
	default:
		return fmt.Errorf("undecoded codec: cannot decode into %T", v)
	}
	return nil
}

func (undecodedCodec) Name() string { return "proto" }

// listContainersUndecoded calls ListContainers (no filter) and returns
// the size of the reply once all of it has arrived.
func (d *daemon) listContainersUndecoded(ctx context.Context, timeout time.Duration) (int, error) {
	var n replySize
	err := d.listContainersInto(ctx, timeout, &n)
	return int(n), err
}

// listContainersReply returns the encoded reply of ListContainers (no filter).
func (d *daemon) listContainersReply(ctx context.Context, timeout time.Duration) ([]byte, error) {
	var b replyBytes
	err := d.listContainersInto(ctx, timeout, &b)
	return b, err
}

func (d *daemon) listContainersInto(ctx context.Context, timeout time.Duration, reply any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return d.rawConn.Invoke(ctx, runtime.RuntimeService_ListContainers_FullMethodName, &runtime.ListContainersRequest{}, reply,
		grpc.ForceCodecV2(undecodedCodec{}), grpc.MaxCallRecvMsgSize(16<<20))
}

package main

import (
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestUndecodedCodec(t *testing.T) {
	var c undecodedCodec
	req := &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{Id: "abc"}}
	enc, err := c.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back runtime.ListContainersRequest
	if err := proto.Unmarshal(enc.Materialize(), &back); err != nil || !proto.Equal(&back, req) {
		t.Fatalf("request does not round-trip: %v, %v", &back, err)
	}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Error("Marshal of a non-message succeeded")
	}
	reply := mem.BufferSlice{mem.SliceBuffer(make([]byte, 70)), mem.SliceBuffer(make([]byte, 30))}
	var n replySize
	if err := c.Unmarshal(reply, &n); err != nil || n != 100 {
		t.Fatalf("Unmarshal = %d, %v; want 100", n, err)
	}
	if err := c.Unmarshal(reply, &back); err == nil {
		t.Error("Unmarshal into a message succeeded; it must refuse to decode")
	}
}

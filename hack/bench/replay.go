package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// A replay server answers ListContainers with the bytes of a reply that a
// runtime sent, and does no other work. The kubelet's client timed
// against it gives the floor of the ListContainers figure: what the call
// costs on this machine with a runtime that takes no time, that is the
// client's decoding and gRPC's transport. A runtime's figure minus the
// floor is the runtime's own share.
const replayCommand = "replay-list-server"

// figListFloor is the floor figure for a runtime's reply.
const figListFloor = "ListContainers replayed by a server doing no work (floor)"

// replayMain serves the reply in replyPath on the unix socket sockPath
// until SIGTERM.
func replayMain(replyPath, sockPath string) error {
	reply, err := os.ReadFile(replyPath)
	if err != nil {
		return err
	}
	l, err := net.Listen("unix", sockPath)
	if err != nil {
		return err
	}
	srv := newReplayServer(reply)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, termSignal, os.Interrupt)
		<-sig
		srv.Stop()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

func newReplayServer(reply []byte) *grpc.Server {
	srv := grpc.NewServer(grpc.ForceServerCodecV2(replayCodec{encoding.GetCodecV2("proto")}))
	srv.RegisterService(replayDesc(reply), nil)
	return srv
}

// replayDesc is the part of the RuntimeService the kubelet's client
// needs: Version, which it calls when it connects, and ListContainers.
func replayDesc(reply []byte) *grpc.ServiceDesc {
	version := func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		if err := dec(new(runtime.VersionRequest)); err != nil {
			return nil, err
		}
		return &runtime.VersionResponse{Version: "0.1.0", RuntimeName: "replay", RuntimeVersion: "0", RuntimeApiVersion: "v1"}, nil
	}
	list := func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		if err := dec(new(runtime.ListContainersRequest)); err != nil {
			return nil, err
		}
		return replayedReply(reply), nil
	}
	return &grpc.ServiceDesc{
		ServiceName: runtime.RuntimeService_ServiceDesc.ServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Version", Handler: version},
			{MethodName: "ListContainers", Handler: list},
		},
	}
}

// replayedReply is an encoded reply that replayCodec sends as it is.
type replayedReply []byte

type replayCodec struct{ proto encoding.CodecV2 }

func (c replayCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(replayedReply); ok {
		return mem.BufferSlice{mem.SliceBuffer(r)}, nil
	}
	return c.proto.Marshal(v)
}

func (c replayCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (c replayCodec) Name() string { return c.proto.Name() }

// replayer is a running replay server with the kubelet's client on it.
type replayer struct {
	dir  string
	proc *process
	rt   internalapi.RuntimeService
}

// startReplayer serves reply from a replay server, in its own process as
// a runtime would be, and connects the kubelet's client to it.
func startReplayer(ctx context.Context, reply []byte, timeout time.Duration) (*replayer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-replay-")
	if err != nil {
		return nil, err
	}
	r := &replayer{dir: dir}
	replyPath, sock := filepath.Join(dir, "reply"), filepath.Join(dir, "replay.sock")
	if err := os.WriteFile(replyPath, reply, 0o600); err != nil {
		r.stop()
		return nil, err
	}
	if r.proc, err = startProcess("replay server", filepath.Join(dir, "log"), self, replayCommand, replyPath, sock); err != nil {
		r.stop()
		return nil, err
	}
	err = waitFor(ctx, 30*time.Second, func() error {
		rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint("unix://" + sock).
			WithConnectionTimeout(timeout).WithTracerProvider(nil).Build(ctx)
		if err == nil {
			r.rt = rt
		}
		return err
	}, r.proc)
	if err != nil {
		r.stop()
		return nil, fmt.Errorf("replay server: %w", err)
	}
	return r, nil
}

func (r *replayer) stop() {
	if r.rt != nil {
		r.rt.Close(context.Background())
	}
	if r.proc != nil {
		r.proc.Stop(5 * time.Second)
	}
	os.RemoveAll(r.dir)
}

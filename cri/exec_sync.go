package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/oci"
)

// execSyncOutputMax caps each of stdout and stderr kept for an ExecSync
// reply, so a chatty probe cannot grow the daemon or exceed the gRPC
// message limit. Output past the cap is dropped, not an error.
const execSyncOutputMax = 16 << 20

// ExecSync implements runtime.RuntimeServiceServer: it runs the command to
// completion (or its timeout) and returns its output and exit code.
func (s *Service) ExecSync(ctx context.Context, req *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("%w: exec: cmd is empty", errInvalidArgument)
	}
	if req.GetTimeout() < 0 {
		return nil, fmt.Errorf("%w: exec: negative timeout %d", errInvalidArgument, req.GetTimeout())
	}
	c, err := s.runningContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	runCtx := ctx
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	stdout, stderr := &cappedBuffer{max: execSyncOutputMax}, &cappedBuffer{max: execSyncOutputMax}
	code, err := s.opts.Runtime.Exec(runCtx, c.Handler, c.ID, oci.ExecOptions{Cmd: req.GetCmd(), Stdout: stdout, Stderr: stderr})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, fmt.Errorf("exec in %s: %w", c.ID, ctx.Err())
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("exec in %s: command timed out after %ds: %w", c.ID, req.GetTimeout(), context.DeadlineExceeded)
	case errors.Is(err, oci.ErrNotRunning):
		return nil, fmt.Errorf("%w: exec in %s: %v", errFailedPrecondition, c.ID, err)
	default:
		return nil, fmt.Errorf("exec in %s: %w", c.ID, err)
	}
	return &runtime.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}

// cappedBuffer keeps the first max bytes and accepts (drops) the rest, so
// the process never sees a write error.
type cappedBuffer struct {
	max int
	buf bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte { return b.buf.Bytes() }

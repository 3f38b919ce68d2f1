package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/imagestore"
	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/sandbox"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("x: %w", sandbox.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("x: %w", oci.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("x: %w", cgroups.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("pull x: %w", imagestore.ErrInvalidReference), codes.InvalidArgument},
		{fmt.Errorf("%w: container config is nil", errInvalidArgument), codes.InvalidArgument},
		{fmt.Errorf("x: %w", sandbox.ErrNotFound), codes.NotFound},
		{fmt.Errorf("pull x: %w", imagestore.ErrNotFound), codes.NotFound},
		{fmt.Errorf("%w: container %q", errNotFound, "c"), codes.NotFound},
		{fmt.Errorf("run pod: %w", cni.ErrNotReady), codes.FailedPrecondition},
		{fmt.Errorf("exec: %w", oci.ErrNotRunning), codes.FailedPrecondition},
		{fmt.Errorf("pull x: %w", imagestore.ErrUnauthorized), codes.Unauthenticated},
		{fmt.Errorf("stop containers of pod p: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("pull x: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("layer y: %w", &os.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}), codes.ResourceExhausted},
		{fmt.Errorf("rootfs: %w", &os.PathError{Op: "write", Path: "f", Err: syscall.EDQUOT}), codes.ResourceExhausted},
		{fmt.Errorf("%w: encode pod info", errInternal), codes.Internal},
		{status.Error(codes.Internal, "panic"), codes.Internal},
		{errors.New("plugin failed"), codes.Unknown},
	}
	for _, tt := range tests {
		got := toStatus(tt.err)
		if status.Code(got) != tt.want {
			t.Errorf("toStatus(%v) = %v, want %v", tt.err, status.Code(got), tt.want)
		}
		if s, _ := status.FromError(got); s.Message() != tt.err.Error() && status.Code(tt.err) == codes.Unknown {
			t.Errorf("toStatus(%v) message %q, want the error's own", tt.err, s.Message())
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) is not nil")
	}
}

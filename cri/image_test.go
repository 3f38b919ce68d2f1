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

	"github.com/criserver/criserver/imagestore"
)

func TestImageUser(t *testing.T) {
	tests := []struct {
		user   string
		uid    int64
		hasUID bool
		name   string
	}{
		{"", 0, false, ""},
		{"0", 0, true, ""},
		{"1000", 1000, true, ""},
		{"1000:1000", 1000, true, ""},
		{"app", 0, false, "app"},
		{"app:staff", 0, false, "app"},
		{"-1", 0, false, "-1"},
	}
	for _, tt := range tests {
		uid, name := imageUser(tt.user)
		if (uid != nil) != tt.hasUID || (uid != nil && *uid != tt.uid) || name != tt.name {
			t.Errorf("imageUser(%q) = %v, %q", tt.user, uid, name)
		}
	}
}

func TestImageError(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("pull x: %w", imagestore.ErrInvalidReference), codes.InvalidArgument},
		{fmt.Errorf("pull x: %w", imagestore.ErrNotFound), codes.NotFound},
		{fmt.Errorf("pull x: %w", imagestore.ErrUnauthorized), codes.Unauthenticated},
		{fmt.Errorf("pull x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("pull x: layer y: %w", &os.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}), codes.ResourceExhausted},
		{errors.New("boom"), codes.Unknown},
	}
	for _, tt := range tests {
		if got := status.Code(imageError(tt.err)); got != tt.code {
			t.Errorf("imageError(%v) = %v, want %v", tt.err, got, tt.code)
		}
	}
}

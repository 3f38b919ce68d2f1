package cri

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestContainerErrorOutOfSpace(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := fmt.Errorf("create rootfs of c: %w", &os.PathError{Op: "write", Path: "f", Err: errno})
		if got := status.Code(containerError(err)); got != codes.ResourceExhausted {
			t.Errorf("containerError(%v) = %v, want ResourceExhausted", err, got)
		}
	}
}

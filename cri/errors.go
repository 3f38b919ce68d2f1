package cri

import (
	"context"
	"errors"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/imagestore"
	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/sandbox"
)

// Errors the cri package raises itself, wrapped with what went wrong
// (fmt.Errorf("%w: ...", errNotFound)). Handlers return them and the
// lower packages' errors as they are; the interceptors give each its
// gRPC code from codeTable.
var (
	errInvalidArgument    = errors.New("invalid argument")
	errNotFound           = errors.New("not found")
	errFailedPrecondition = errors.New("failed precondition")
	errResourceExhausted  = errors.New("resource exhausted")
	errInternal           = errors.New("internal error")
	errUnimplemented      = errors.New("not implemented")
)

// codeTable maps errors to gRPC codes: the first entry the error wraps
// wins. An error that wraps none of them is Unknown.
var codeTable = []struct {
	target error
	code   codes.Code
}{
	{errInvalidArgument, codes.InvalidArgument},
	{sandbox.ErrInvalid, codes.InvalidArgument},
	{oci.ErrInvalid, codes.InvalidArgument},
	{cgroups.ErrInvalid, codes.InvalidArgument},
	{imagestore.ErrInvalidReference, codes.InvalidArgument},
	{imagestore.ErrInvalidArchive, codes.InvalidArgument},
	{errNotFound, codes.NotFound},
	{sandbox.ErrNotFound, codes.NotFound},
	{imagestore.ErrNotFound, codes.NotFound},
	{errFailedPrecondition, codes.FailedPrecondition},
	{oci.ErrNotRunning, codes.FailedPrecondition},
	{cni.ErrNotReady, codes.FailedPrecondition},
	{imagestore.ErrUnauthorized, codes.Unauthenticated},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
	// Out of disk space: the kubelet's image GC and eviction free space
	// on their own schedule; the call says that space is the problem.
	{syscall.ENOSPC, codes.ResourceExhausted},
	{syscall.EDQUOT, codes.ResourceExhausted},
	{errResourceExhausted, codes.ResourceExhausted},
	{errInternal, codes.Internal},
	{errUnimplemented, codes.Unimplemented},
}

// toStatus gives err its gRPC code. An error that already is a gRPC
// status (a panic turned Internal, an embedded Unimplemented method) keeps
// its code.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}

func codeOf(err error) codes.Code {
	for _, e := range codeTable {
		if errors.Is(err, e.target) {
			return e.code
		}
	}
	return codes.Unknown
}

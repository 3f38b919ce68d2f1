//go:build faultinject

package main

import (
	"context"
	"os"

	"google.golang.org/grpc"
)

// faultInterceptors lets e2e tests make one RPC panic, to prove that the
// recovery interceptor answers Internal and the daemon keeps serving. Only
// binaries built with -tags faultinject have it.
func faultInterceptors() []grpc.UnaryServerInterceptor {
	method := os.Getenv("CRISERVER_FAULT_PANIC_METHOD")
	if method == "" {
		return nil
	}
	return []grpc.UnaryServerInterceptor{
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if info.FullMethod == method {
				panic("fault injected in " + method)
			}
			return handler(ctx, req)
		},
	}
}

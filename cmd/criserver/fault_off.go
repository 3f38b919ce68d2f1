//go:build !faultinject

package main

import "google.golang.org/grpc"

// faultInterceptors is empty in production builds; see fault_on.go.
func faultInterceptors() []grpc.UnaryServerInterceptor { return nil }

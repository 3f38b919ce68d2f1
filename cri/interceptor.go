package cri

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// Metrics counts and times every RPC.
type Metrics struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
}

// NewMetrics registers the RPC metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "criserver",
			Name:      "grpc_request_duration_seconds",
			Help:      "Latency of CRI RPCs by method.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
		}, []string{"method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "criserver",
			Name:      "grpc_request_errors_total",
			Help:      "CRI RPCs that returned an error, by method and gRPC code.",
		}, []string{"method", "code"}),
	}
	reg.MustRegister(m.latency, m.errors)
	return m
}

// UnaryInterceptor orders the interceptors so that a recovered panic is
// still timed, counted and logged.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := recoverUnary(ctx, req, info, handler)
		m.observe(info.FullMethod, start, err)
		return resp, err
	}
}

// StreamInterceptor does for streams what UnaryInterceptor does for calls.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				err = panicError(info.FullMethod, r)
			}
			m.observe(info.FullMethod, start, err)
		}()
		return handler(srv, ss)
	}
}

// UnaryErrorCodes gives every call's error its gRPC code (codeTable).
// Chained inside the metrics interceptor, so that errors are counted by
// the code the client sees.
func UnaryErrorCodes(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, toStatus(err)
}

// StreamErrorCodes does for streams what UnaryErrorCodes does for calls.
func StreamErrorCodes(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return toStatus(handler(srv, ss))
}

func (m *Metrics) observe(method string, start time.Time, err error) {
	d := time.Since(start)
	m.latency.WithLabelValues(method).Observe(d.Seconds())
	if err != nil {
		m.errors.WithLabelValues(method, status.Code(err).String()).Inc()
	}
	if klog.V(4).Enabled() {
		klog.InfoS("CRI request", "method", method, "duration", d, "code", status.Code(err).String(), "err", err)
	}
}

func recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, panicError(info.FullMethod, r)
		}
	}()
	return handler(ctx, req)
}

func panicError(method string, r any) error {
	klog.ErrorS(nil, "Panic in CRI handler", "method", method, "panic", r, "stack", string(debug.Stack()))
	return status.Errorf(codes.Internal, "internal error in %s: %v", method, r)
}

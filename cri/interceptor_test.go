package cri

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type panicky struct {
	runtime.UnimplementedRuntimeServiceServer
}

func (panicky) Version(context.Context, *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	var m map[string]int
	m["boom"]++ //nolint:staticcheck // SA5000: the nil map write is the panic under test
	return nil, nil
}

func (panicky) Status(context.Context, *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	return &runtime.StatusResponse{}, nil
}

func TestPanicBecomesInternalAndServerSurvives(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.UnaryInterceptor(m.UnaryInterceptor()))
	runtime.RegisterRuntimeServiceServer(srv, panicky{})
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient("passthrough:///buf",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := runtime.NewRuntimeServiceClient(conn)
	ctx := context.Background()

	_, err = client.Version(ctx, &runtime.VersionRequest{})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "Version") {
		t.Fatalf("panic must give Internal naming the method, got %v", err)
	}
	if _, err := client.Status(ctx, &runtime.StatusRequest{}); err != nil {
		t.Fatalf("server must keep serving after a panic: %v", err)
	}
	_, err = client.ListContainers(ctx, &runtime.ListContainersRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("want Unimplemented, got %v", err)
	}

	errs := testutil.ToFloat64(m.errors.WithLabelValues("/runtime.v1.RuntimeService/Version", "Internal"))
	if errs != 1 {
		t.Errorf("error counter for the panic = %v, want 1", errs)
	}
	if n := testutil.CollectAndCount(m.latency); n != 3 {
		t.Errorf("latency series = %d, want one per method called (3)", n)
	}
}

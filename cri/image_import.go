package cri

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/imagestore"
)

// Image import is criserver's own API beside the CRI, on the same socket
// and behind the same interceptors: `criserver image import` streams an
// image archive to the daemon, which owns the store. The client sends the
// archive as BytesValue chunks, with an optional name in the request
// metadata; the daemon answers with the imported images as the CRI lists
// them. Well-known message types keep it free of generated code.
const (
	ImportMethod       = "/criserver.images.v1.ImageImport/Import"
	ImportNameMetadata = "criserver-image-name"
	// ImportChunkSize is what a client sends per message, well under the
	// daemon's 16 MiB receive limit.
	ImportChunkSize = 1 << 20
)

// archiveImporter is what the import handler needs of the service.
type archiveImporter interface {
	importArchive(ctx context.Context, archive io.Reader, name string) ([]imagestore.Image, error)
}

var importServiceDesc = grpc.ServiceDesc{
	ServiceName: "criserver.images.v1.ImageImport",
	HandlerType: (*archiveImporter)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Import",
		ClientStreams: true,
		Handler:       importHandler,
	}},
}

func importHandler(srv any, stream grpc.ServerStream) error {
	ctx := stream.Context()
	var name string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(ImportNameMetadata); len(v) > 0 {
			name = v[0]
		}
	}
	imgs, err := srv.(archiveImporter).importArchive(ctx, &chunkReader{stream: stream}, name)
	if err != nil {
		klog.ErrorS(err, "Image import failed")
		return err
	}
	resp := &runtime.ListImagesResponse{}
	for _, img := range imgs {
		resp.Images = append(resp.Images, criImage(img))
	}
	return stream.SendMsg(resp)
}

func (s *Service) importArchive(ctx context.Context, archive io.Reader, name string) ([]imagestore.Image, error) {
	return s.opts.Images.Import(ctx, archive, name)
}

// chunkReader reads the archive from the client's BytesValue messages.
type chunkReader struct {
	stream grpc.ServerStream
	buf    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		var m wrapperspb.BytesValue
		if err := r.stream.RecvMsg(&m); err != nil {
			return 0, err // io.EOF once the client has sent everything
		}
		r.buf = m.GetValue()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

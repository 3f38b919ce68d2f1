package cri

import (
	"context"
	"errors"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/imagestore"
)

// imageError maps imagestore errors onto gRPC codes.
func imageError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, imagestore.ErrInvalidReference):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, imagestore.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, imagestore.ErrUnauthorized):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.Error(status.FromContextError(err).Code(), err.Error())
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// The kubelet's image GC frees space on its own schedule; say
		// plainly that space, not the image, is the problem.
		return status.Error(codes.ResourceExhausted, "no space left for the image store: "+err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

func imageRefOf(spec *runtime.ImageSpec) (string, error) {
	ref := strings.TrimSpace(spec.GetImage())
	if ref == "" {
		return "", status.Error(codes.InvalidArgument, "image reference is empty")
	}
	return ref, nil
}

// PullImage implements runtime.ImageServiceServer.
func (s *Service) PullImage(ctx context.Context, req *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	ref, err := imageRefOf(req.GetImage())
	if err != nil {
		return nil, err
	}
	img, err := s.opts.Images.Pull(ctx, ref, authOf(req.GetAuth()))
	if err != nil {
		klog.ErrorS(err, "PullImage failed", "image", ref)
		return nil, imageError(err)
	}
	return &runtime.PullImageResponse{ImageRef: img.ID}, nil
}

func authOf(a *runtime.AuthConfig) *imagestore.Auth {
	if a == nil {
		return nil
	}
	return &imagestore.Auth{Username: a.Username, Password: a.Password, Auth: a.Auth,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
}

// ImageStatus implements runtime.ImageServiceServer. An absent image is an
// empty response, not an error: that is how the kubelet learns it must pull.
func (s *Service) ImageStatus(ctx context.Context, req *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ref, err := imageRefOf(req.GetImage())
	if err != nil {
		return nil, err
	}
	img, err := s.opts.Images.Resolve(ref)
	if errors.Is(err, imagestore.ErrNotFound) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, imageError(err)
	}
	resp := &runtime.ImageStatusResponse{Image: criImage(img)}
	if req.GetVerbose() {
		info, err := verboseImageInfo(img)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "image %s: %v", img.ID, err)
		}
		resp.Info = info
	}
	return resp, nil
}

// ListImages implements runtime.ImageServiceServer. A filter names one
// image by any reference Resolve accepts.
func (s *Service) ListImages(ctx context.Context, req *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := s.opts.Images.Resolve(ref)
		if errors.Is(err, imagestore.ErrNotFound) || errors.Is(err, imagestore.ErrInvalidReference) {
			return &runtime.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, imageError(err)
		}
		return &runtime.ListImagesResponse{Images: []*runtime.Image{criImage(img)}}, nil
	}
	imgs := s.opts.Images.List()
	out := make([]*runtime.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, criImage(img))
	}
	return &runtime.ListImagesResponse{Images: out}, nil
}

// RemoveImage implements runtime.ImageServiceServer. Removing an absent
// image succeeds.
func (s *Service) RemoveImage(ctx context.Context, req *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ref, err := imageRefOf(req.GetImage())
	if err != nil {
		return nil, err
	}
	if err := s.opts.Images.Remove(ctx, ref); err != nil {
		return nil, imageError(err)
	}
	return &runtime.RemoveImageResponse{}, nil
}

// ImageFsInfo implements runtime.ImageServiceServer from usage the store
// keeps up to date; it never walks the layer store.
func (s *Service) ImageFsInfo(ctx context.Context, req *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	return &runtime.ImageFsInfoResponse{
		ImageFilesystems:     []*runtime.FilesystemUsage{fsUsage(s.opts.Images.ImageFsUsage())},
		ContainerFilesystems: []*runtime.FilesystemUsage{fsUsage(s.opts.Images.ContainerFsUsage())},
	}, nil
}

func fsUsage(u imagestore.FsUsage) *runtime.FilesystemUsage {
	return &runtime.FilesystemUsage{
		Timestamp:  u.Timestamp.UnixNano(),
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: u.Mountpoint},
		UsedBytes:  &runtime.UInt64Value{Value: u.UsedBytes},
		InodesUsed: &runtime.UInt64Value{Value: u.InodesUsed},
	}
}

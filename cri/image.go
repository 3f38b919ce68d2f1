package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/imagestore"
)

func imageRefOf(spec *runtime.ImageSpec) (string, error) {
	ref := strings.TrimSpace(spec.GetImage())
	if ref == "" {
		return "", fmt.Errorf("%w: image reference is empty", errInvalidArgument)
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
		return nil, err
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
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: criImage(img)}
	if req.GetVerbose() {
		info, err := verboseImageInfo(img)
		if err != nil {
			return nil, fmt.Errorf("%w: image %s: %v", errInternal, img.ID, err)
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
			return nil, err
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
		return nil, err
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

package cri

import (
	"path"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// imageVolumes are a container config's image volume mounts (CRI
// Mount.image), in the order of its mounts.
type imageVolumes struct {
	cfg    *runtime.ContainerConfig
	mounts []*runtime.Mount
	images []string
}

func imageVolumeMounts(cfg *runtime.ContainerConfig) imageVolumes {
	v := imageVolumes{cfg: cfg}
	for _, m := range cfg.GetMounts() {
		if ref := m.GetImage().GetImage(); ref != "" {
			v.mounts = append(v.mounts, m)
			v.images = append(v.images, ref)
		}
	}
	return v
}

// roots maps each image mount's container path to its mounted image;
// mounted holds the mounted roots in the order of v.images.
func (v imageVolumes) roots(mounted []string) map[string]string {
	if len(v.mounts) == 0 {
		return nil
	}
	out := make(map[string]string, len(v.mounts))
	for i, m := range v.mounts {
		if i < len(mounted) {
			out[path.Clean(m.GetContainerPath())] = mounted[i]
		}
	}
	return out
}

// withImageRefs is the config to record: the one asked for, with each image
// mount's image_ref set to the ID its image resolved to, so that
// ContainerStatus reports it and the kubelet can tell which image a volume
// uses (as PullImage's image_ref names it).
func (v imageVolumes) withImageRefs(ids []string) *runtime.ContainerConfig {
	if len(v.mounts) == 0 {
		return v.cfg
	}
	out := proto.Clone(v.cfg).(*runtime.ContainerConfig)
	i := 0
	for _, m := range out.GetMounts() {
		if m.GetImage().GetImage() == "" {
			continue
		}
		if i < len(ids) {
			m.Image.ImageRef = ids[i]
		}
		i++
	}
	return out
}

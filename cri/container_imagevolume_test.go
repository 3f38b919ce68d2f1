package cri

import (
	"reflect"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestImageVolumeMounts(t *testing.T) {
	cfg := &runtime.ContainerConfig{Mounts: []*runtime.Mount{
		{ContainerPath: "/a/", Image: &runtime.ImageSpec{Image: "img:1"}, Readonly: true},
		{ContainerPath: "/host", HostPath: "/srv"},
		{ContainerPath: "/b", Image: &runtime.ImageSpec{Image: "sha256:abc"}, ImageSubPath: "etc", Readonly: true},
	}}
	v := imageVolumeMounts(cfg)
	if !reflect.DeepEqual(v.images, []string{"img:1", "sha256:abc"}) {
		t.Fatalf("images = %v", v.images)
	}
	if got := v.roots([]string{"/m/0", "/m/1"}); !reflect.DeepEqual(got, map[string]string{"/a": "/m/0", "/b": "/m/1"}) {
		t.Errorf("roots = %v", got)
	}
	rec := v.withImageRefs([]string{"sha256:111", "sha256:222"})
	if rec.Mounts[0].Image.ImageRef != "sha256:111" || rec.Mounts[2].Image.ImageRef != "sha256:222" || rec.Mounts[1].Image != nil {
		t.Errorf("recorded mounts = %v", rec.Mounts)
	}
	if cfg.Mounts[0].Image.ImageRef != "" {
		t.Error("the request was changed")
	}
	plain := &runtime.ContainerConfig{Mounts: []*runtime.Mount{{ContainerPath: "/host", HostPath: "/srv"}}}
	if v := imageVolumeMounts(plain); v.withImageRefs(nil) != plain || v.roots(nil) != nil {
		t.Error("a config without image volumes is not kept as is")
	}
}

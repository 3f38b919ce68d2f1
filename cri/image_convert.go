package cri

import (
	"encoding/json"
	"strconv"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/imagestore"
)

// criImage converts a store image to its CRI form.
func criImage(img imagestore.Image) *runtime.Image {
	out := &runtime.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(max(img.Size, 0)),
		Pinned:      img.Pinned,
		Spec:        &runtime.ImageSpec{Image: img.ID, Annotations: img.Annotations},
	}
	if out.RepoTags == nil {
		out.RepoTags = []string{}
	}
	if out.RepoDigests == nil {
		out.RepoDigests = []string{}
	}
	uid, name := imageUser(img.Config.Config.User)
	if uid != nil {
		out.Uid = &runtime.Int64Value{Value: *uid}
	}
	out.Username = name
	return out
}

// imageUser splits the config's User ("uid", "name", "uid:gid",
// "name:group") into the numeric uid or the user name, as the kubelet wants
// for runAsNonRoot checks. An empty User is neither.
func imageUser(user string) (uid *int64, name string) {
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		return nil, ""
	}
	if n, err := strconv.ParseInt(u, 10, 64); err == nil && n >= 0 {
		return &n, ""
	}
	return nil, u
}

// verboseImageInfo is the verbose ImageStatus payload: the image config as
// JSON under "info", as containerd reports it.
func verboseImageInfo(img imagestore.Image) (map[string]string, error) {
	b, err := json.Marshal(struct {
		ID        string `json:"id"`
		ImageSpec any    `json:"imageSpec"`
	}{img.ID, img.Config})
	if err != nil {
		return nil, err
	}
	return map[string]string{"info": string(b)}, nil
}

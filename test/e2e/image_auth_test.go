package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

func TestImagePullFromHtpasswdRegistry(t *testing.T) {
	reg := framework.StartRegistry(t, framework.WithBasicAuth("e2e", "s3cret"))
	reg.Push(t, "private/busybox", "v1", framework.BusyboxImage(t))
	ref := reg.Ref("private/busybox", "v1")

	authFile := filepath.Join(t.TempDir(), "auth.json")
	token := base64.StdEncoding.EncodeToString([]byte("e2e:s3cret"))
	if err := os.WriteFile(authFile, fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, reg.Addr, token), 0o600); err != nil {
		t.Fatal(err)
	}
	d := framework.StartDaemon(t)

	pull := func(auth *runtime.AuthConfig) error {
		_, err := d.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}, Auth: auth})
		return err
	}
	if err := pull(nil); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("pull without credentials: %v, want Unauthenticated", err)
	}
	if err := pull(&runtime.AuthConfig{Username: "e2e", Password: "wrong"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("pull with a wrong password: %v, want Unauthenticated", err)
	}
	if len(listImages(t, d)) != 0 {
		t.Fatalf("a refused pull left an image behind")
	}
	for name, auth := range map[string]*runtime.AuthConfig{
		"username/password": {Username: "e2e", Password: "s3cret"},
		"auth":              {Auth: token},
	} {
		if err := pull(auth); err != nil {
			t.Fatalf("pull with %s: %v", name, err)
		}
		removeImage(t, d, ref)
	}

	// The global auth file serves pulls that carry no credentials.
	d2 := framework.StartDaemon(t, framework.WithConfig(fmt.Sprintf("[image]\nauth_file = %q\n", authFile)))
	if _, err := d2.Image.PullImage(framework.Ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("pull with the auth file: %v", err)
	}
}

package oci

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func i64(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }

func TestResolveUser(t *testing.T) {
	strict := runtime.SupplementalGroupsPolicy_Strict
	tests := []struct {
		name      string
		imageUser string
		sc        *runtime.LinuxContainerSecurityContext
		want      ResolvedUser
		wantErr   string
	}{
		{name: "default root with groups", want: ResolvedUser{0, 0, []uint32{0, 10}, "/root"}},
		{name: "image uid known", imageUser: "1000", want: ResolvedUser{1000, 1000, []uint32{1000, 10, 50}, "/home/alice"}},
		{name: "image uid unknown", imageUser: "4242", want: ResolvedUser{4242, 0, []uint32{0}, "/"}},
		{name: "image uid:gid", imageUser: "1001:29", want: ResolvedUser{1001, 29, []uint32{29, 50}, "/home/bob"}},
		{name: "image name", imageUser: "bob", want: ResolvedUser{1001, 1001, []uint32{1001, 50, 29}, "/home/bob"}},
		{name: "image name:group", imageUser: "alice:staff", want: ResolvedUser{1000, 50, []uint32{50, 10}, "/home/alice"}},
		{name: "image name:gid", imageUser: "alice:7", want: ResolvedUser{1000, 7, []uint32{7, 10, 50}, "/home/alice"}},
		{name: "image unknown name", imageUser: "mallory", wantErr: "mallory"},
		{name: "image unknown group", imageUser: "alice:nogroup", wantErr: "nogroup"},
		{name: "run_as_user overrides image", imageUser: "bob", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000)},
			want: ResolvedUser{1000, 1000, []uint32{1000, 10, 50}, "/home/alice"}},
		{name: "run_as_username", sc: &runtime.LinuxContainerSecurityContext{RunAsUsername: "alice"},
			want: ResolvedUser{1000, 1000, []uint32{1000, 10, 50}, "/home/alice"}},
		{name: "run_as_group", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1001), RunAsGroup: i64(3000)},
			want: ResolvedUser{1001, 3000, []uint32{3000, 50, 29}, "/home/bob"}},
		{name: "run_as_group without user", imageUser: "alice", sc: &runtime.LinuxContainerSecurityContext{RunAsGroup: i64(3000)},
			wantErr: "without run_as_user"},
		{name: "supplemental merge", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{4000, 50}},
			want: ResolvedUser{1000, 1000, []uint32{1000, 10, 50, 4000}, "/home/alice"}},
		{name: "supplemental strict", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{4000},
			SupplementalGroupsPolicy: strict}, want: ResolvedUser{1000, 1000, []uint32{1000, 4000}, "/home/alice"}},
		{name: "strict ignores image groups of name user", imageUser: "bob", sc: &runtime.LinuxContainerSecurityContext{SupplementalGroupsPolicy: strict},
			want: ResolvedUser{1001, 1001, []uint32{1001}, "/home/bob"}},
		{name: "negative uid", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(-1)}, wantErr: "out of range"},
		{name: "huge uid", imageUser: "4294967295", wantErr: "out of range"},
		{name: "negative supplemental", sc: &runtime.LinuxContainerSecurityContext{SupplementalGroups: []int64{-5}}, wantErr: "out of range"},
		{name: "unknown policy", sc: &runtime.LinuxContainerSecurityContext{SupplementalGroupsPolicy: 7}, wantErr: "policy"},
	}
	root := testRootfs(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveUser(root, tc.imageUser, tc.sc)
			if tc.wantErr != "" {
				mustInvalid(t, err, tc.wantErr)
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestResolveUserWithoutPasswd(t *testing.T) {
	root := t.TempDir()
	got, err := resolveUser(root, "123:456", nil)
	if err != nil || !reflect.DeepEqual(got, ResolvedUser{123, 456, []uint32{456}, "/"}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := resolveUser(root, "alice", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("name without passwd: err = %v", err)
	}
}

// An image whose /etc/passwd is a symlink to a host file must be read
// inside its rootfs, never on the host.
func TestResolveUserSymlinkStaysInRootfs(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(hostFile, []byte("app:x:77:88::/app:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "etc/passwd")
	if err := os.Symlink(hostFile, link); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveUser(root, "app", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want the host file not to be read", err)
	}
	// A relative link climbing above the rootfs is clamped to it too.
	if err := os.WriteFile(filepath.Join(root, "real"), []byte("app:x:77:88::/app:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../real", link); err != nil {
		t.Fatal(err)
	}
	got, err := resolveUser(root, "app", nil)
	if err != nil || got.UID != 77 || got.GID != 88 {
		t.Fatalf("got %+v, %v", got, err)
	}
	// A link loop is an image without a passwd file, not a daemon error.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	if got, err := resolveUser(root, "5", nil); err != nil || got.UID != 5 {
		t.Fatalf("loop: got %+v, %v", got, err)
	}
}

func TestGenerateSpecUser(t *testing.T) {
	in := testInput(t)
	in.Image.Config.User = "alice"
	res := mustGenerate(t, in)
	u := res.Spec.Process.User
	if u.UID != 1000 || u.GID != 1000 || !reflect.DeepEqual(u.AdditionalGids, []uint32{1000, 10, 50}) {
		t.Fatalf("process user = %+v", u)
	}
	if !reflect.DeepEqual(res.User.AdditionalGids, u.AdditionalGids) {
		t.Fatalf("resolved user %+v differs from spec %+v", res.User, u)
	}
	if !contains(res.Spec.Process.Env, "HOME=/home/alice") {
		t.Fatalf("env = %q", res.Spec.Process.Env)
	}
}

// A FIFO planted as /etc/passwd must not block user resolution.
func TestResolveUserIgnoresSpecialFiles(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := resolveUser(root, "12", nil)
	if err != nil || got.UID != 12 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

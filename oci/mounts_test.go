package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeMountInfo writes a mount table where dir/shared is a shared mount,
// dir/slave a slave mount and everything else (/) private.
func writeMountInfo(t *testing.T, dir string) string {
	t.Helper()
	body := fmt.Sprintf(`1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw
2 1 0:50 / %[1]s/shared rw,relatime shared:7 - tmpfs tmpfs rw
3 1 0:51 / %[1]s/slave rw,relatime master:9 - tmpfs tmpfs rw
`, dir)
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func findMount(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestCRIMounts(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"shared/data", "slave/data", "private/data", "private/nested"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "private/data"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "image")
	if err := os.MkdirAll(filepath.Join(img, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Resolved inside the image root, a link out of it names a missing path.
	if err := os.Symlink("../../../private/data", filepath.Join(img, "out")); err != nil {
		t.Fatal(err)
	}
	mountInfo := writeMountInfo(t, dir)
	imgMount := func(sub string, readonly bool) *runtime.Mount {
		return &runtime.Mount{ContainerPath: "/vol", Image: &runtime.ImageSpec{Image: "busybox"}, ImageSubPath: sub, Readonly: readonly}
	}
	m := func(host, ctr string, mod func(*runtime.Mount)) *runtime.Mount {
		mm := &runtime.Mount{HostPath: filepath.Join(dir, host), ContainerPath: ctr}
		if mod != nil {
			mod(mm)
		}
		return mm
	}
	ro := func(m *runtime.Mount) { m.Readonly = true }
	rro := func(m *runtime.Mount) { m.Readonly, m.RecursiveReadOnly = true, true }
	h2c := func(m *runtime.Mount) { m.Propagation = runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER }
	bidi := func(m *runtime.Mount) { m.Propagation = runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL }

	tests := []struct {
		name      string
		mounts    []*runtime.Mount
		rro       bool
		wantOpts  map[string][]string // destination -> options
		wantSrc   map[string]string
		wantRootP string
		wantErr   string
	}{
		{name: "private rw", mounts: []*runtime.Mount{m("private/data", "/data", nil)},
			wantOpts: map[string][]string{"/data": {"rbind", "rprivate", "rw"}}},
		{name: "readonly", mounts: []*runtime.Mount{m("private/data", "/data", ro)},
			wantOpts: map[string][]string{"/data": {"rbind", "rprivate", "ro"}}},
		{name: "recursive readonly supported", rro: true, mounts: []*runtime.Mount{m("private/data", "/data", rro)},
			wantOpts: map[string][]string{"/data": {"rbind", "rprivate", "ro", "rro"}}},
		{name: "recursive readonly unsupported", mounts: []*runtime.Mount{m("private/data", "/data", rro)}, wantErr: "not supported"},
		{name: "recursive readonly without readonly", rro: true,
			mounts: []*runtime.Mount{m("private/data", "/data", func(m *runtime.Mount) { m.RecursiveReadOnly = true })}, wantErr: "read-only"},
		{name: "recursive readonly with propagation", rro: true,
			mounts: []*runtime.Mount{m("slave/data", "/data", func(m *runtime.Mount) { rro(m); h2c(m) })}, wantErr: "private propagation"},
		{name: "host to container on slave", mounts: []*runtime.Mount{m("slave/data", "/data", h2c)},
			wantOpts: map[string][]string{"/data": {"rbind", "rslave", "rw"}}, wantRootP: "rslave"},
		{name: "host to container on shared", mounts: []*runtime.Mount{m("shared/data", "/data", h2c)},
			wantOpts: map[string][]string{"/data": {"rbind", "rslave", "rw"}}, wantRootP: "rslave"},
		{name: "host to container on private", mounts: []*runtime.Mount{m("private/data", "/data", h2c)}, wantErr: "not a shared or slave"},
		{name: "bidirectional on shared", mounts: []*runtime.Mount{m("shared/data", "/data", bidi), m("slave/data", "/d2", h2c)},
			wantOpts: map[string][]string{"/data": {"rbind", "rshared", "rw"}, "/d2": {"rbind", "rslave", "rw"}}, wantRootP: "rshared"},
		{name: "bidirectional on slave", mounts: []*runtime.Mount{m("slave/data", "/data", bidi)}, wantErr: "not a shared mount"},
		{name: "symlink source resolved", mounts: []*runtime.Mount{m("link", "/data", nil)},
			wantSrc: map[string]string{"/data": filepath.Join(dir, "private/data")}},
		{name: "missing source", mounts: []*runtime.Mount{m("nope", "/data", nil)}, wantErr: "does not exist"},
		{name: "relative container path", mounts: []*runtime.Mount{m("private/data", "data", nil)}, wantErr: "absolute"},
		{name: "dotdot container path", mounts: []*runtime.Mount{m("private/data", "/a/../etc", nil)}, wantErr: "'..'"},
		{name: "relative host path", mounts: []*runtime.Mount{{HostPath: "rel", ContainerPath: "/x"}}, wantErr: "absolute"},
		{name: "duplicate destination", mounts: []*runtime.Mount{m("private/data", "/x", nil), m("private/nested", "/x/", nil)}, wantErr: "duplicate"},
		{name: "unknown propagation", mounts: []*runtime.Mount{m("private/data", "/x", func(m *runtime.Mount) { m.Propagation = 9 })}, wantErr: "propagation"},
		{name: "image volume", mounts: []*runtime.Mount{imgMount("", true)},
			wantOpts: map[string][]string{"/vol": {"rbind", "rprivate", "ro"}}, wantSrc: map[string]string{"/vol": img}},
		{name: "image volume subpath", mounts: []*runtime.Mount{imgMount("etc", true)},
			wantSrc: map[string]string{"/vol": filepath.Join(img, "etc")}},
		{name: "image volume read-write", mounts: []*runtime.Mount{imgMount("", false)}, wantErr: "must be read-only"},
		{name: "image volume missing subpath", mounts: []*runtime.Mount{imgMount("nope", true)}, wantErr: "does not exist"},
		{name: "image volume dotdot subpath", mounts: []*runtime.Mount{imgMount("etc/../..", true)}, wantErr: "'..'"},
		{name: "image volume absolute subpath", mounts: []*runtime.Mount{imgMount("/etc", true)}, wantErr: "relative"},
		{name: "image volume symlink out of the image", mounts: []*runtime.Mount{imgMount("out", true)}, wantErr: "does not exist"},
		{name: "image volume with host path", mounts: []*runtime.Mount{func() *runtime.Mount { m := imgMount("", true); m.HostPath = dir; return m }()}, wantErr: "both"},
		{name: "subpath without image", mounts: []*runtime.Mount{m("private/data", "/x", func(m *runtime.Mount) { m.ImageSubPath = "etc" })}, wantErr: "without an image"},
		{name: "idmapped", mounts: []*runtime.Mount{m("private/data", "/x", func(m *runtime.Mount) { m.UidMappings = []*runtime.IDMapping{{Length: 1}} })}, wantErr: "id-mapped"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(t)
			in.Host.MountInfoPath = mountInfo
			in.RecursiveReadOnly = tc.rro
			in.Config.Mounts = tc.mounts
			in.ImageMountRoots = map[string]string{"/vol": img}
			res, err := GenerateSpec(in)
			if tc.wantErr != "" {
				mustInvalid(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := res.Spec
			for dst, want := range tc.wantOpts {
				got := findMount(s, dst)
				if got == nil || got.Type != "bind" || !reflect.DeepEqual(got.Options, want) {
					t.Errorf("mount %s = %+v, want options %v", dst, got, want)
				}
			}
			for dst, want := range tc.wantSrc {
				if got := findMount(s, dst); got == nil || got.Source != want {
					t.Errorf("mount %s = %+v, want source %s", dst, got, want)
				}
			}
			if s.Linux.RootfsPropagation != tc.wantRootP {
				t.Errorf("rootfsPropagation = %q, want %q", s.Linux.RootfsPropagation, tc.wantRootP)
			}
		})
	}
}

func TestMountOrderAndOverrides(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	in := testInput(t)
	in.Config.Mounts = []*runtime.Mount{
		{HostPath: dir, ContainerPath: "/a/b/c"},
		{HostPath: hosts, ContainerPath: "/etc/hosts"},
		{HostPath: dir, ContainerPath: "/a"},
		{HostPath: dir, ContainerPath: "/sys/fs/cgroup"},
	}
	s := mustGenerate(t, in).Spec
	var dsts []string
	count := map[string]int{}
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
		count[m.Destination]++
	}
	want := []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/etc/resolv.conf", "/etc/hostname", "/dev/shm",
		"/a", "/etc/hosts", "/a/b/c", "/sys/fs/cgroup"}
	if !reflect.DeepEqual(dsts, want) {
		t.Fatalf("mount order = %v\nwant %v", dsts, want)
	}
	if m := findMount(s, "/etc/hosts"); m.Source != hosts {
		t.Errorf("/etc/hosts from %s, want the CRI mount", m.Source)
	}
}

func TestSandboxMounts(t *testing.T) {
	in := testInput(t)
	in.Config.Linux.SecurityContext.ReadonlyRootfs = true
	s := mustGenerate(t, in).Spec
	for dst, src := range map[string]string{"/etc/hosts": "/pods/pod1/hosts", "/etc/resolv.conf": "/pods/pod1/resolv.conf",
		"/etc/hostname": "/pods/pod1/hostname", "/dev/shm": "/pods/pod1/shm"} {
		m := findMount(s, dst)
		if m == nil || m.Source != src || m.Type != "bind" {
			t.Fatalf("%s = %+v", dst, m)
		}
		if dst != "/dev/shm" && !contains(m.Options, "ro") {
			t.Errorf("%s should be read-only with a read-only rootfs: %v", dst, m.Options)
		}
		if dst == "/dev/shm" && !contains(m.Options, "rw") {
			t.Errorf("/dev/shm must stay writable: %v", m.Options)
		}
	}

	in = testInput(t)
	in.Sandbox.ShmPath, in.Sandbox.HostIPC, in.Sandbox.IPCNSPath = "", true, ""
	if m := findMount(mustGenerate(t, in).Spec, "/dev/shm"); m == nil || m.Source != "/dev/shm" {
		t.Errorf("host IPC shm = %+v", m)
	}
	in = testInput(t)
	in.Sandbox.ShmPath, in.Sandbox.ResolvConfPath = "", ""
	s = mustGenerate(t, in).Spec
	if m := findMount(s, "/dev/shm"); m == nil || m.Type != "tmpfs" {
		t.Errorf("private shm = %+v", m)
	}
	if findMount(s, "/etc/resolv.conf") != nil {
		t.Error("resolv.conf mounted without a source")
	}
}

func TestImageVolumes(t *testing.T) {
	vols := map[string]struct{}{"/data": {}, "/var/cache/": {}, "/taken": {}}
	tests := []struct {
		policy   string
		wantDirs func(in SpecInput) []string
		wantMnt  bool
		wantErr  bool
	}{
		{policy: "", wantDirs: func(in SpecInput) []string {
			return []string{filepath.Join(in.ImageRootfs, "data"), filepath.Join(in.ImageRootfs, "var/cache")}
		}},
		{policy: ImageVolumesIgnore, wantDirs: func(SpecInput) []string { return nil }},
		{policy: ImageVolumesBind, wantMnt: true},
		{policy: "weird", wantErr: true},
	}
	for _, tc := range tests {
		t.Run("policy "+tc.policy, func(t *testing.T) {
			in := testInput(t)
			in.Image.Config.Volumes = vols
			in.ImageVolumes = tc.policy
			in.VolumeDir = t.TempDir()
			in.Config.Mounts = []*runtime.Mount{{HostPath: in.VolumeDir, ContainerPath: "/taken"}}
			res, err := GenerateSpec(in)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantMnt {
				var srcs []string
				for _, dst := range []string{"/data", "/var/cache"} {
					m := findMount(res.Spec, dst)
					if m == nil || filepath.Dir(m.Source) != in.VolumeDir {
						t.Fatalf("volume %s = %+v", dst, m)
					}
					srcs = append(srcs, m.Source)
				}
				if !reflect.DeepEqual(res.Dirs, srcs) {
					t.Fatalf("dirs = %v, want %v", res.Dirs, srcs)
				}
			} else if want := tc.wantDirs(in); !reflect.DeepEqual(res.Dirs, want) {
				t.Fatalf("dirs = %v, want %v", res.Dirs, want)
			}
			if m := findMount(res.Spec, "/taken"); m == nil || m.Source != in.VolumeDir {
				t.Errorf("CRI mount over an image volume lost: %+v", m)
			}
			if err := res.MakeDirs(); err != nil {
				t.Fatal(err)
			}
			for _, d := range res.Dirs {
				if st, err := os.Stat(d); err != nil || !st.IsDir() {
					t.Errorf("MakeDirs did not create %s: %v", d, err)
				}
			}
		})
	}
}

func TestParseFeatures(t *testing.T) {
	const userns = `"linux":{"namespaces":["mount","user"],"mountExtensions":{"idmap":{"enabled":true}}}`
	for _, tc := range []struct {
		name, json, release string
		want                Features
	}{
		{"rro", `{"mountOptions":["ro","rro","bind"]}`, "6.1.0", Features{RecursiveReadOnly: true}},
		{"no rro", `{"mountOptions":["ro","bind"]}`, "6.1.0", Features{}},
		{"rro on an old kernel", `{"mountOptions":["rro"]}`, "5.11.9", Features{}},
		{"empty", `{}`, "6.1.0", Features{}},
		{"userns", `{` + userns + `}`, "6.18.44-fc-v657", Features{IDMappedMounts: true, UserNamespaces: true}},
		{"idmap without overlay on idmapped layers", `{` + userns + `}`, "5.15.0", Features{IDMappedMounts: true}},
		{"idmap disabled", `{"linux":{"namespaces":["user"],"mountExtensions":{"idmap":{"enabled":false}}}}`, "6.1.0", Features{}},
		{"idmap unknown", `{"linux":{"namespaces":["user"]}}`, "6.1.0", Features{}},
		{"no user namespace", `{"linux":{"namespaces":["mount"],"mountExtensions":{"idmap":{"enabled":true}}}}`, "6.1.0", Features{IDMappedMounts: true}},
	} {
		got, err := parseFeatures([]byte(tc.json), tc.release)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := parseFeatures([]byte("nope"), "6.1.0"); err == nil {
		t.Error("bad features json accepted")
	}
}

func TestReleaseAtLeast(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    bool
	}{{"6.18.44-fc-v657", true}, {"5.12.0", true}, {"5.11.9", false}, {"4.19.0-18-amd64", false}, {"5.15+", true}, {"x", false}} {
		if got := releaseAtLeast(tc.release, 5, 12); got != tc.want {
			t.Errorf("releaseAtLeast(%q) = %v", tc.release, got)
		}
	}
}

package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultMounts are the kernel filesystems every container gets, as
// containerd sets them. /sys and /sys/fs/cgroup are read-only unless the
// container is privileged.
func defaultMounts(privileged bool) []specs.Mount {
	sysOpt := "ro"
	if privileged {
		sysOpt = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", sysOpt}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", sysOpt}},
	}
}

// hostSysfs replaces the sysfs mount of a container in a user namespace
// on the host's network: mounting sysfs needs privilege over the network
// namespace, which the host's user namespace owns, so the host's /sys is
// bound instead (read-only unless the container is privileged).
func hostSysfs(m specs.Mount) specs.Mount {
	opts := []string{"rbind", "rprivate", "nosuid", "noexec", "nodev"}
	for _, o := range m.Options {
		if o == "ro" || o == "rw" {
			opts = append(opts, o)
		}
	}
	return specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: opts}
}

// setMounts fills spec.Mounts: defaults, the pod's files, image volumes,
// then the CRI mounts (which replace anything at the same destination).
func setMounts(s *specs.Spec, res *Result, in SpecInput, host *HostInfo) error {
	sc := in.Config.GetLinux().GetSecurityContext()
	criMounts, err := criMounts(s, in.Config.GetMounts(), mountSupport{rro: in.RecursiveReadOnly, idmap: in.IDMappedMounts}, in.ImageMountRoots, host)
	if err != nil {
		return err
	}
	taken := map[string]bool{}
	for _, m := range criMounts {
		taken[m.Destination] = true
	}
	var out []specs.Mount
	add := func(m specs.Mount) {
		if !taken[m.Destination] {
			out = append(out, m)
		}
	}
	for _, m := range defaultMounts(sc.GetPrivileged()) {
		if m.Destination == "/sys" && in.Sandbox.HostNetwork && in.Sandbox.UserNSPath != "" {
			m = hostSysfs(m)
		}
		add(m)
	}
	for _, m := range sandboxMounts(in.Sandbox, sc.GetReadonlyRootfs()) {
		add(m)
	}
	vols, dirs, err := imageVolumes(in, taken)
	if err != nil {
		return err
	}
	for _, m := range vols {
		add(m)
	}
	res.Dirs = dirs
	out = append(out, criMounts...)
	s.Mounts = out
	return nil
}

// sandboxMounts binds the pod's hosts, resolv.conf, hostname and shm.
func sandboxMounts(sb SandboxInfo, readonlyRootfs bool) []specs.Mount {
	fileOpts := []string{"rbind", "rprivate", "rw"}
	if readonlyRootfs {
		fileOpts = []string{"rbind", "rprivate", "ro"}
	}
	var out []specs.Mount
	for _, f := range []struct{ dst, src string }{
		{"/etc/hosts", sb.HostsPath},
		{"/etc/resolv.conf", sb.ResolvConfPath},
		{"/etc/hostname", sb.HostnamePath},
	} {
		if f.src != "" {
			out = append(out, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: fileOpts})
		}
	}
	switch {
	case sb.ShmPath != "":
		out = append(out, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: sb.ShmPath, Options: []string{"rbind", "rprivate", "rw"}})
	case sb.HostIPC:
		out = append(out, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "rprivate", "rw"}})
	default:
		out = append(out, specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}})
	}
	return out
}

// imageVolumes handles the image config's Volumes by policy; destinations
// already covered by a CRI mount are skipped.
func imageVolumes(in SpecInput, taken map[string]bool) ([]specs.Mount, []string, error) {
	policy := in.ImageVolumes
	if policy == "" {
		policy = ImageVolumesMkdir
	}
	if policy == ImageVolumesIgnore || len(in.Image.Config.Volumes) == 0 {
		return nil, nil, nil
	}
	vols := make([]string, 0, len(in.Image.Config.Volumes))
	for v := range in.Image.Config.Volumes {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	var mounts []specs.Mount
	var dirs []string
	for _, v := range vols {
		dst := path.Clean("/" + v)
		if taken[dst] || dst == "/" {
			continue
		}
		switch policy {
		case ImageVolumesMkdir:
			p, err := securejoin.SecureJoin(in.ImageRootfs, dst)
			if err != nil {
				return nil, nil, fmt.Errorf("image volume %q: %w", v, err)
			}
			dirs = append(dirs, p)
		case ImageVolumesBind:
			if in.VolumeDir == "" {
				return nil, nil, fmt.Errorf("image volume policy %q needs a volume directory", policy)
			}
			sum := sha256.Sum256([]byte(dst))
			src := filepath.Join(in.VolumeDir, hex.EncodeToString(sum[:8]))
			dirs = append(dirs, src)
			mounts = append(mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", "rw"}})
		default:
			return nil, nil, fmt.Errorf("unknown image volume policy %q", policy)
		}
	}
	return mounts, dirs, nil
}

// MakeDirs creates the directories listed in r.Dirs that do not exist
// yet, owned by the container's user so that it can write its volumes;
// existing directories keep the owner the image gave them.
func (r *Result) MakeDirs() error {
	for _, d := range r.Dirs {
		if _, err := os.Lstat(d); err == nil {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create volume dir: %w", err)
		}
		if err := os.Lchown(d, int(r.User.UID), int(r.User.GID)); err != nil {
			return fmt.Errorf("chown volume dir: %w", err)
		}
	}
	return nil
}

// criMounts converts the CRI mounts, parents before children.
// mountSupport is what the runtime handler can do with mounts.
type mountSupport struct {
	rro, idmap bool
}

func criMounts(s *specs.Spec, mounts []*runtime.Mount, support mountSupport, imageRoots map[string]string, host *HostInfo) ([]specs.Mount, error) {
	var out []specs.Mount
	seen := map[string]bool{}
	for _, m := range mounts {
		if m == nil {
			continue
		}
		cm, err := criMount(s, m, support, imageRoots, host)
		if err != nil {
			return nil, err
		}
		if seen[cm.Destination] {
			return nil, invalidf("duplicate mount destination %q", cm.Destination)
		}
		seen[cm.Destination] = true
		out = append(out, cm)
	}
	SortMounts(out)
	return out, nil
}

// SortMounts orders mounts parents first (by path depth, otherwise keeping
// their order), so that no mount hides one made before it.
func SortMounts(ms []specs.Mount) {
	sort.SliceStable(ms, func(i, j int) bool { return depth(ms[i].Destination) < depth(ms[j].Destination) })
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

func criMount(s *specs.Spec, m *runtime.Mount, support mountSupport, imageRoots map[string]string, host *HostInfo) (specs.Mount, error) {
	dst := m.GetContainerPath()
	if dst == "" || !path.IsAbs(dst) || hasDotDot(dst) || strings.ContainsRune(dst, 0) {
		return specs.Mount{}, invalidf("mount container path %q must be absolute and without '..'", dst)
	}
	dst = path.Clean(dst)
	if m.GetImage().GetImage() != "" {
		return imageMount(m, dst, imageRoots)
	}
	if m.GetImageSubPath() != "" {
		return specs.Mount{}, invalidf("mount %q: image_sub_path without an image", dst)
	}
	uidMap, gidMap, err := mountIDMappings(m, dst, support.idmap)
	if err != nil {
		return specs.Mount{}, err
	}
	src := m.GetHostPath()
	if src == "" || !filepath.IsAbs(src) || strings.ContainsRune(src, 0) {
		return specs.Mount{}, invalidf("mount host path %q for %q must be absolute", src, dst)
	}
	// Bind the symlink's target, as the kubelet expects; a missing source
	// is refused rather than created.
	resolved, err := filepath.EvalSymlinks(src)
	if errors.Is(err, fs.ErrNotExist) {
		return specs.Mount{}, invalidf("mount source %q for %q does not exist", src, dst)
	}
	if err != nil {
		return specs.Mount{}, invalidf("mount source %q for %q: %v", src, dst, err)
	}
	opts := []string{"rbind"}
	switch m.GetPropagation() {
	case runtime.MountPropagation_PROPAGATION_PRIVATE:
		opts = append(opts, "rprivate")
	case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		if err := checkPropagation(host, resolved, false); err != nil {
			return specs.Mount{}, err
		}
		opts = append(opts, "rslave")
		if s.Linux.RootfsPropagation != "rshared" {
			s.Linux.RootfsPropagation = "rslave"
		}
	case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		if err := checkPropagation(host, resolved, true); err != nil {
			return specs.Mount{}, err
		}
		opts = append(opts, "rshared")
		s.Linux.RootfsPropagation = "rshared"
	default:
		return specs.Mount{}, invalidf("unknown mount propagation %v for %q", m.GetPropagation(), dst)
	}
	switch {
	case m.GetRecursiveReadOnly():
		if !m.GetReadonly() {
			return specs.Mount{}, invalidf("recursive read-only mount %q must also be read-only", dst)
		}
		if m.GetPropagation() != runtime.MountPropagation_PROPAGATION_PRIVATE {
			return specs.Mount{}, invalidf("recursive read-only mount %q needs private propagation", dst)
		}
		if !support.rro {
			return specs.Mount{}, invalidf("recursive read-only mount %q is not supported by the runtime on this host", dst)
		}
		opts = append(opts, "ro", "rro")
	case m.GetReadonly():
		opts = append(opts, "ro")
	default:
		opts = append(opts, "rw")
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: resolved, Options: opts, UIDMappings: uidMap, GIDMappings: gidMap}, nil
}

// mountIDMappings converts a CRI mount's id mappings (the kubelet sets the
// pod's user namespace mappings on the volumes of a pod in one): one uid
// and one gid mapping, or none.
func mountIDMappings(m *runtime.Mount, dst string, supported bool) (uid, gid []specs.LinuxIDMapping, err error) {
	if len(m.GetUidMappings()) == 0 && len(m.GetGidMappings()) == 0 {
		return nil, nil, nil
	}
	if !supported {
		return nil, nil, invalidf("id-mapped mount %q is not supported by the runtime handler on this host", dst)
	}
	if len(m.GetUidMappings()) != 1 || len(m.GetGidMappings()) != 1 {
		return nil, nil, invalidf("id-mapped mount %q needs exactly one uid and one gid mapping", dst)
	}
	conv := func(x *runtime.IDMapping) ([]specs.LinuxIDMapping, error) {
		if x.GetLength() == 0 {
			return nil, invalidf("id-mapped mount %q has an empty mapping", dst)
		}
		return []specs.LinuxIDMapping{{ContainerID: x.GetContainerId(), HostID: x.GetHostId(), Size: x.GetLength()}}, nil
	}
	if uid, err = conv(m.GetUidMappings()[0]); err != nil {
		return nil, nil, err
	}
	if gid, err = conv(m.GetGidMappings()[0]); err != nil {
		return nil, nil, err
	}
	return uid, gid, nil
}

// imageMount binds an image volume (CRI Mount.image): the image's mounted
// root, or the image_sub_path inside it, read-only. The image is mounted
// read-only already; a read-write request is refused rather than quietly
// made read-only.
func imageMount(m *runtime.Mount, dst string, roots map[string]string) (specs.Mount, error) {
	if m.GetHostPath() != "" {
		return specs.Mount{}, invalidf("mount %q names both an image and a host path", dst)
	}
	if !m.GetReadonly() {
		return specs.Mount{}, invalidf("image volume mount %q must be read-only", dst)
	}
	root := roots[dst]
	if root == "" {
		return specs.Mount{}, fmt.Errorf("image volume mount %q: image %q is not mounted", dst, m.GetImage().GetImage())
	}
	src := root
	if sub := m.GetImageSubPath(); sub != "" {
		if path.IsAbs(sub) || hasDotDot(sub) || strings.ContainsRune(sub, 0) {
			return specs.Mount{}, invalidf("image volume mount %q: image_sub_path %q must be relative and without '..'", dst, sub)
		}
		// Symlinks in the image resolve inside its root; the image is
		// read-only, so what is checked here is what gets bound.
		p, err := securejoin.SecureJoin(root, sub)
		if err != nil {
			return specs.Mount{}, invalidf("image volume mount %q: image_sub_path %q: %v", dst, sub, err)
		}
		if _, err := os.Lstat(p); err != nil {
			return specs.Mount{}, invalidf("image volume mount %q: image_sub_path %q does not exist in image %q", dst, sub, m.GetImage().GetImage())
		}
		src = p
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", "ro"}}, nil
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// checkPropagation makes sure the mount holding source propagates events
// (shared, or slave when wantShared is false); otherwise rslave/rshared
// in the container would silently behave as private.
func checkPropagation(host *HostInfo, source string, wantShared bool) error {
	p := host.MountInfoPath
	if p == "" {
		p = "/proc/self/mountinfo"
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	infos, err := mountinfo.GetMountsFromReader(f, mountinfo.ParentsFilter(source))
	if err != nil {
		return fmt.Errorf("parse mount table: %w", err)
	}
	var best *mountinfo.Info
	for _, i := range infos {
		if best == nil || len(i.Mountpoint) >= len(best.Mountpoint) {
			best = i
		}
	}
	if best == nil {
		return fmt.Errorf("no mount found for %q", source)
	}
	shared, slave := false, false
	for _, o := range strings.Fields(best.Optional) {
		shared = shared || strings.HasPrefix(o, "shared:")
		slave = slave || strings.HasPrefix(o, "master:")
	}
	if wantShared && !shared {
		return invalidf("path %q is mounted on %q but it is not a shared mount (needed for bidirectional propagation)", source, best.Mountpoint)
	}
	if !wantShared && !shared && !slave {
		return invalidf("path %q is mounted on %q but it is not a shared or slave mount (needed for host-to-container propagation)", source, best.Mountpoint)
	}
	return nil
}

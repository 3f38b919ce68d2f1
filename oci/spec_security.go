package oci

import (
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultMaskedPaths and defaultReadonlyPaths hide the parts of /proc and
// /sys that leak host details or let a container change the host; the
// same lists containerd uses.
var (
	defaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// setSecurity sets capabilities, no_new_privs, masked and read-only
// paths, seccomp and AppArmor. Privileged containers get every capability,
// no masked or read-only paths and no seccomp or AppArmor confinement.
//
// In a user namespace, a container whose masked and read-only path lists
// are both empty gets neither: that is how the kubelet asks for
// procMount: Unmasked, which it allows only with a user namespace (for
// procMount: Default it always sends the default lists). Elsewhere empty
// lists mean the defaults, for clients that send none.
func setSecurity(s *specs.Spec, sc *runtime.LinuxContainerSecurityContext, inUserNS bool, host *HostInfo) error {
	privileged := sc.GetPrivileged()
	caps, ambient, err := capabilitySet(sc.GetCapabilities(), privileged, host.Capabilities)
	if err != nil {
		return err
	}
	// The kernel raises an ambient capability only if it is also
	// inheritable; nothing else is inheritable (CVE-2022-24769).
	s.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding: caps, Effective: caps, Permitted: caps, Inheritable: ambient, Ambient: ambient,
	}
	s.Process.NoNewPrivileges = sc.GetNoNewPrivs()
	unmasked := inUserNS && len(sc.GetMaskedPaths()) == 0 && len(sc.GetReadonlyPaths()) == 0
	if !privileged && !unmasked {
		if s.Linux.MaskedPaths, err = pathList(sc.GetMaskedPaths(), defaultMaskedPaths, "masked"); err != nil {
			return err
		}
		if s.Linux.ReadonlyPaths, err = pathList(sc.GetReadonlyPaths(), defaultReadonlyPaths, "read-only"); err != nil {
			return err
		}
	}
	if privileged {
		if host.AppArmor {
			s.Process.ApparmorProfile = apparmorUnconfined
		}
		return nil
	}
	if s.Linux.Seccomp, err = seccompProfile(sc, caps); err != nil {
		return err
	}
	if s.Process.ApparmorProfile, err = apparmorProfile(sc, host); err != nil {
		return err
	}
	return nil
}

// pathList returns the CRI's list when given, else the default. The CRI
// cannot tell an empty list from none, so empty means default.
func pathList(cri, def []string, what string) ([]string, error) {
	if len(cri) == 0 {
		return append([]string(nil), def...), nil
	}
	out := make([]string, 0, len(cri))
	for _, p := range cri {
		if !path.IsAbs(p) || hasDotDot(p) {
			return nil, invalidf("%s path %q must be absolute and without '..'", what, p)
		}
		out = append(out, path.Clean(p))
	}
	return out, nil
}

// AppArmor profile names.
const (
	apparmorUnconfined = "unconfined"
	// apparmorDefaultProfile is loaded by the installer where AppArmor is
	// enabled; RuntimeDefault uses it when the kernel has it loaded.
	apparmorDefaultProfile = "criserver-default"
)

// apparmorProfile resolves the CRI AppArmor settings. On hosts without
// AppArmor, RuntimeDefault and Unconfined do nothing and a Localhost
// profile is refused, since it cannot be enforced.
func apparmorProfile(sc *runtime.LinuxContainerSecurityContext, host *HostInfo) (string, error) {
	kind, name := runtime.SecurityProfile_Unconfined, ""
	switch p := sc.GetApparmor(); {
	case p != nil:
		kind, name = p.GetProfileType(), p.GetLocalhostRef()
	case sc.GetApparmorProfile() != "":
		// Deprecated string form: runtime/default, unconfined, localhost/<name>.
		switch v := sc.GetApparmorProfile(); {
		case v == "runtime/default":
			kind = runtime.SecurityProfile_RuntimeDefault
		case v == apparmorUnconfined:
		case strings.HasPrefix(v, "localhost/"):
			kind, name = runtime.SecurityProfile_Localhost, strings.TrimPrefix(v, "localhost/")
		default:
			return "", invalidf("unknown apparmor profile %q", v)
		}
	}
	switch kind {
	case runtime.SecurityProfile_Unconfined:
		if host.AppArmor {
			return apparmorUnconfined, nil
		}
		return "", nil
	case runtime.SecurityProfile_RuntimeDefault:
		if host.AppArmor && host.AppArmorProfiles[apparmorDefaultProfile] {
			return apparmorDefaultProfile, nil
		}
		return "", nil
	case runtime.SecurityProfile_Localhost:
		name = strings.TrimPrefix(name, "localhost/")
		if name == "" {
			return "", invalidf("apparmor localhost profile has no name")
		}
		if !host.AppArmor {
			return "", invalidf("apparmor profile %q requested but AppArmor is not enabled on this host", name)
		}
		if !host.AppArmorProfiles[name] {
			return "", invalidf("apparmor profile %q is not loaded", name)
		}
		return name, nil
	default:
		return "", invalidf("unknown apparmor profile type %v", kind)
	}
}

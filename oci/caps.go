package oci

import (
	"strconv"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// allCapabilities lists every capability the kernel and runc 1.1 know,
// in kernel order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).
var allCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// defaultCapabilities is the set unprivileged containers start with, the
// one containerd and Docker use.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// normalizeCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into
// "CAP_NET_ADMIN"; unknown names are refused.
func normalizeCap(name string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	for _, k := range allCapabilities {
		if k == c {
			return c, nil
		}
	}
	return "", invalidf("unknown capability %q", name)
}

// capabilitySet computes the bounding/effective/permitted set with
// containerd's semantics: add ALL starts from every capability the daemon
// holds (hostCaps; nil = every known one), drop ALL from none; then the
// named adds and drops apply. Ambient capabilities are also added to the
// other sets so that they can be raised. A capability the daemon lacks
// cannot be given: runc would fail to apply it.
func capabilitySet(c *runtime.Capability, privileged bool, hostCaps []string) (caps, ambient []string, err error) {
	if hostCaps == nil {
		hostCaps = allCapabilities
	}
	set := map[string]bool{}
	base := defaultCapabilities
	if privileged || hasAll(c.GetAddCapabilities()) {
		base = hostCaps
	}
	// Privileged containers keep every capability whatever the drops say.
	if privileged || !hasAll(c.GetDropCapabilities()) {
		for _, k := range base {
			set[k] = true
		}
	}
	for _, n := range c.GetAddCapabilities() {
		if strings.EqualFold(n, "ALL") {
			continue
		}
		k, err := normalizeCap(n)
		if err != nil {
			return nil, nil, err
		}
		set[k] = true
	}
	for _, n := range c.GetDropCapabilities() {
		if strings.EqualFold(n, "ALL") {
			continue
		}
		k, err := normalizeCap(n)
		if err != nil {
			return nil, nil, err
		}
		if !privileged {
			delete(set, k)
		}
	}
	for _, n := range c.GetAddAmbientCapabilities() {
		k, err := normalizeCap(n)
		if err != nil {
			return nil, nil, err
		}
		set[k] = true
		ambient = append(ambient, k)
	}
	// Keep the kernel order so that specs are stable and diffable.
	for _, k := range allCapabilities {
		if !set[k] {
			continue
		}
		if !contains(hostCaps, k) {
			return nil, nil, invalidf("capability %s is not available on this host", k)
		}
		caps = append(caps, k)
	}
	return caps, ambient, nil
}

func hasAll(names []string) bool {
	for _, n := range names {
		if strings.EqualFold(strings.TrimSpace(n), "ALL") {
			return true
		}
	}
	return false
}

// parseCapMask turns a /proc/<pid>/status hex mask into capability names.
func parseCapMask(hex string) ([]string, error) {
	m, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, k := range allCapabilities {
		if m&(1<<uint(i)) != 0 {
			out = append(out, k)
		}
	}
	return out, nil
}

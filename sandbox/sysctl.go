package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctlNamespace names the namespace a sysctl belongs to: nsNet or nsIPC.
// ok is false for a sysctl that is not namespaced: setting it in a pod
// would change the host.
func sysctlNamespace(key string) (kind nsKind, ok bool) {
	name := normalizeSysctl(key)
	switch {
	case name == "kernel.sem",
		strings.HasPrefix(name, "kernel.shm"),
		strings.HasPrefix(name, "kernel.msg"),
		strings.HasPrefix(name, "fs.mqueue."):
		return nsIPC, true
	case strings.HasPrefix(name, "net."):
		return nsNet, true
	}
	return nsKind{}, false
}

// normalizeSysctl turns the slash form (net/ipv4/ip_forward) into the dot
// form; a key with slashes keeps dots that are part of one element.
func normalizeSysctl(key string) string {
	if !strings.Contains(key, "/") {
		return key
	}
	return strings.ReplaceAll(key, "/", ".")
}

// sysctlPath is the /proc/sys file of key.
func sysctlPath(key string) string {
	if strings.Contains(key, "/") {
		return filepath.Join("/proc/sys", key)
	}
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// validateSysctls refuses sysctls that are not namespaced, and those of a
// namespace the pod shares with the host.
func validateSysctls(sysctls map[string]string, hostNet, hostIPC bool) error {
	for k, v := range sysctls {
		if k == "" || strings.Contains(k, "..") || strings.ContainsAny(k, "\x00\n") || strings.HasPrefix(k, "/") || strings.ContainsAny(v, "\x00") {
			return fmt.Errorf("%w: sysctl %q is malformed", ErrInvalid, k)
		}
		kind, ok := sysctlNamespace(k)
		switch {
		case !ok:
			return fmt.Errorf("%w: sysctl %q is not namespaced and would change the host", ErrInvalid, k)
		case kind == nsNet && hostNet:
			return fmt.Errorf("%w: sysctl %q cannot be set in a pod on the host network", ErrInvalid, k)
		case kind == nsIPC && hostIPC:
			return fmt.Errorf("%w: sysctl %q cannot be set in a pod that uses the host IPC namespace", ErrInvalid, k)
		}
	}
	return nil
}

// applySysctls writes the pod's sysctls from a thread inside its network
// and IPC namespaces: /proc/sys resolves these per calling thread.
func applySysctls(sysctls map[string]string, netns, ipcns string) error {
	if len(sysctls) == 0 {
		return nil
	}
	return inNamespaces(map[nsKind]string{nsNet: netns, nsIPC: ipcns}, func() error {
		for k, v := range sysctls {
			if err := os.WriteFile(sysctlPath(k), []byte(v), 0o644); err != nil {
				return fmt.Errorf("%w: set sysctl %s=%q: %w", ErrInvalid, k, v, err)
			}
		}
		return nil
	})
}

package sandbox

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultShmSize is the size of a pod's /dev/shm, as Docker and the
// kubelet's other runtimes give it.
const DefaultShmSize = 64 << 20

// resolvConf renders dns, or returns the host's file when dns says nothing.
func resolvConf(dns *runtime.DNSConfig, hostFile string) ([]byte, error) {
	if len(dns.GetServers()) == 0 && len(dns.GetSearches()) == 0 && len(dns.GetOptions()) == 0 {
		data, err := os.ReadFile(hostFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read host resolv.conf: %w", err)
		}
		return data, nil
	}
	var b strings.Builder
	if len(dns.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
	}
	for _, s := range dns.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
	}
	return []byte(b.String()), nil
}

// validateDNS refuses what would corrupt resolv.conf.
func validateDNS(dns *runtime.DNSConfig) error {
	for _, s := range dns.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("%w: DNS server %q is not an IP address", ErrInvalid, s)
		}
	}
	for _, list := range [][]string{dns.GetSearches(), dns.GetOptions()} {
		for _, s := range list {
			if s == "" || strings.ContainsAny(s, " \t\n\x00") {
				return fmt.Errorf("%w: DNS search or option %q is empty or has whitespace", ErrInvalid, s)
			}
		}
	}
	return nil
}

// hostsFile is the pod's /etc/hosts: the host's for a host-network pod,
// else localhost entries and the pod's own name on its primary IP.
func hostsFile(hostNet bool, hostFile, hostname string, ips []string) ([]byte, error) {
	if hostNet {
		data, err := os.ReadFile(hostFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read host hosts file: %w", err)
		}
		return data, nil
	}
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if len(ips) > 0 && hostname != "" {
		fmt.Fprintf(&b, "%s\t%s\n", ips[0], hostname)
	}
	return []byte(b.String()), nil
}

// writePodFile writes a pod file once, in place: RunPodSandbox writes it
// before any container can see it, and a crash before the pod's record is
// complete tears the pod down, files and all. It skips fsync: the files
// live on the state tmpfs and are written for every new pod.
func writePodFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write pod file: %w", err)
	}
	return nil
}

// mountShm mounts the pod's /dev/shm tmpfs at path.
func mountShm(path string, size int64) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("create pod shm dir: %w", err)
	}
	opts := fmt.Sprintf("mode=1777,size=%d", size)
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount pod shm at %s: %w", path, err)
	}
	return nil
}

// unmountShm unmounts the pod shm; repeated calls succeed.
func unmountShm(path string) error {
	if path == "" {
		return nil
	}
	for {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if err == nil {
			continue // stacked mounts: unmount until none is left
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("unmount pod shm %s: %w", path, err)
	}
}

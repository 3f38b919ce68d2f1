package sandbox

import (
	"testing"

	"github.com/criserver/criserver/cgroups"
)

func TestValidateSysctls(t *testing.T) {
	for _, tc := range []struct {
		key              string
		hostNet, hostIPC bool
		ok               bool
	}{
		{"net.ipv4.ip_forward", false, false, true},
		{"net/ipv4/conf/eth0.1/forwarding", false, false, true},
		{"kernel.shmmax", false, false, true},
		{"kernel.sem", false, false, true},
		{"fs.mqueue.msg_max", false, false, true},
		{"kernel.msgmax", false, true, false},
		{"net.core.somaxconn", true, false, false},
		{"kernel.hostname", false, false, false},
		{"vm.swappiness", false, false, false},
		{"net/../../kernel/x", false, false, false},
	} {
		err := validateSysctls(map[string]string{tc.key: "1"}, tc.hostNet, tc.hostIPC)
		if (err == nil) != tc.ok {
			t.Errorf("validateSysctls(%q, net=%v, ipc=%v) = %v, want ok=%v", tc.key, tc.hostNet, tc.hostIPC, err, tc.ok)
		}
	}
	if p := sysctlPath("net/ipv4/conf/eth0.1/forwarding"); p != "/proc/sys/net/ipv4/conf/eth0.1/forwarding" {
		t.Errorf("slash form path = %s", p)
	}
	if p := sysctlPath("net.ipv4.ip_forward"); p != "/proc/sys/net/ipv4/ip_forward" {
		t.Errorf("dot form path = %s", p)
	}
}

func TestPodCgroup(t *testing.T) {
	if got, _ := podCgroup(cgroups.Cgroupfs, "", "abc"); got != "/criserver/podabc" {
		t.Errorf("default cgroupfs pod cgroup = %s", got)
	}
	if got, _ := podCgroup(cgroups.Systemd, "", "abc"); got != "criserver-podabc.slice" {
		t.Errorf("default systemd pod cgroup = %s", got)
	}
	if _, err := podCgroup(cgroups.Systemd, "/not/a/slice", "abc"); err == nil {
		t.Errorf("a path is accepted as a systemd slice")
	}
}

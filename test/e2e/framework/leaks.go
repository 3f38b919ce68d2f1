package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
)

// MountsUnder lists the mount points at or below dir, in mount order.
func MountsUnder(dir string) ([]string, error) {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(filepath.Clean(dir)))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(infos))
	for _, m := range infos {
		out = append(out, m.Mountpoint)
	}
	return out, nil
}

// ProcessesNamed lists the pids whose command name (comm) is name.
func ProcessesNamed(name string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ProcessesMentioning lists the processes, but this one, whose command
// line contains s.
func ProcessesMentioning(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// WaitRemovals waits until the daemon has deleted the writable layers it
// removed: RemoveContainer moves a layer to the trash (overlay2/tmp-del-*)
// and unmounts and deletes it after the call returns. Leak checks call it
// first, so that they count what stays rather than what is on its way out.
// Trash still there after 30 s fails the test.
func (d *Daemon) WaitRemovals(t testing.TB) {
	t.Helper()
	pattern := filepath.Join(d.Root, "overlay2", "tmp-del-*")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left, _ := filepath.Glob(pattern)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed writable layers still in the trash after 30s: %v", left)
		}
	}
}

// PacketFilterRules is the host's iptables and nftables rulesets as text.
// CNI plugins masquerade and map host ports with either (bridge's
// ipMasqBackend, portmap's backend), and the firewall plugin uses
// iptables; pod IDs appear in the rules' comments. Plugins reach nftables
// through the nft program, so without it there is no nftables rule of
// theirs to find.
func PacketFilterRules() (string, error) {
	ipt, err := exec.Command("iptables-save").Output()
	if err != nil {
		return "", fmt.Errorf("iptables-save: %w", err)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return string(ipt), nil
	}
	nft, err := exec.Command("nft", "list", "ruleset").Output()
	if err != nil {
		return "", fmt.Errorf("nft list ruleset: %w", err)
	}
	return string(ipt) + string(nft), nil
}

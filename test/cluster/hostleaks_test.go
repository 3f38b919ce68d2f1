package cluster

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/criserver/criserver/test/e2e/framework"
)

// hostState is what a cluster can leave on the host, as sets of lines:
// processes, mounts, network namespaces, veths, routes, packet filter
// rules, cgroups and files. `make cluster-down` must bring each back to what it
// was before `make cluster`; nothing else may change these meanwhile (the
// README says so).
type hostState map[string]map[string]bool

// clusterCommands are the programs a cluster runs on the host.
var clusterCommands = []string{
	"kube-apiserver", "kube-controller", "kube-scheduler", "kube-proxy", "kubelet",
	"etcd", "coredns", "criserver", "criserver-infra", "conmon", "runc", "crun",
}

// hostFileDirs are directories where a cluster's files could stay behind
// outside CLUSTER_DIR: pod logs, CNI configs and IPAM, runtime state.
var hostFileDirs = []string{"/var/log/pods", "/var/log/containers", "/etc/cni/net.d", "/var/lib/cni", "/run", "/var/run/netns"}

func snapshotHost(clusterDir string) (hostState, error) {
	s := hostState{}
	s["processes"] = setOf(clusterProcesses(clusterDir))
	mounts, err := framework.MountsUnder("/")
	if err != nil {
		return nil, err
	}
	s["mounts"] = setOf(mounts)
	s["network namespaces"] = setOf(dirNames("/run/netns"))
	veths, err := exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		return nil, fmt.Errorf("ip link: %w", err)
	}
	s["veths"] = setOf(linkNames(string(veths)))
	routes, err := exec.Command("ip", "route", "show", "table", "all").Output()
	if err != nil {
		return nil, fmt.Errorf("ip route: %w", err)
	}
	s["routes"] = setOf(routeLines(string(routes)))
	rules, err := framework.PacketFilterRules()
	if err != nil {
		return nil, err
	}
	s["iptables/nftables lines"] = setOf(ruleLines(rules))
	s["cgroups"] = setOf(cgroupDirs())
	files := treeOf(clusterDir)
	for _, d := range hostFileDirs {
		files = append(files, treeOf(d)...)
	}
	s["files"] = setOf(files)
	return s, nil
}

// leftovers lists, per kind, what after has that s had not.
func (s hostState) leftovers(after hostState) []string {
	var out []string
	for kind, lines := range after {
		var extra []string
		for l := range lines {
			if !s[kind][l] {
				extra = append(extra, l)
			}
		}
		sort.Strings(extra)
		if len(extra) > 0 {
			out = append(out, fmt.Sprintf("%s (%d): %s", kind, len(extra), strings.Join(extra, "\n\t")))
		}
	}
	sort.Strings(out)
	return out
}

func setOf(lines []string) map[string]bool {
	m := make(map[string]bool, len(lines))
	for _, l := range lines {
		m[l] = true
	}
	return m
}

// clusterProcesses lists "pid comm cmdline" of processes running one of
// clusterCommands or naming clusterDir on their command line.
func clusterProcesses(clusterDir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err1 := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		cmdline, err2 := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err1 != nil || err2 != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		args := strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
		if slices.Contains(clusterCommands, name) || strings.Contains(args, clusterDir) {
			out = append(out, e.Name()+" "+name+" "+args)
		}
	}
	return out
}

func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// linkNames takes the interface names of `ip -o link` output.
func linkNames(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			names = append(names, name)
		}
	}
	return names
}

// routeLines are the routes of `ip route show`, without the link state
// ("linkdown"): a bridge of another network whose last port went does not
// make a route the cluster's.
func routeLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		lines = append(lines, strings.Join(slices.DeleteFunc(strings.Fields(l), func(f string) bool { return f == "linkdown" }), " "))
	}
	return lines
}

// ruleCounters are iptables-save's [packets:bytes] and nft's counters.
var ruleCounters = regexp.MustCompile(`\[\d+:\d+\]|counter packets \d+ bytes \d+`)

// ruleLines are the rules and chains of iptables-save and nft output,
// without packet counters and the save tool's timestamps.
func ruleLines(rules string) []string {
	var out []string
	for _, l := range strings.Split(rules, "\n") {
		l = strings.TrimSpace(ruleCounters.ReplaceAllString(l, ""))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// cgroupDirs lists every cgroup directory of every mounted hierarchy.
func cgroupDirs() []string {
	var out []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// treeOf lists dir and everything below it, without descending into
// mount points (a pod's root filesystem is counted as its mount).
func treeOf(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		out = append(out, p)
		if d.IsDir() && p != dir && isMountPoint(p) {
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

func isMountPoint(p string) bool {
	mounted, err := mountinfo.Mounted(p)
	return err == nil && mounted
}

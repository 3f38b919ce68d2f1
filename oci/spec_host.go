package oci

import (
	"os"
	"strconv"
	"strings"

	"github.com/criserver/criserver/cgroups"
)

// HostInfo holds the host facts spec generation depends on. DetectHost
// reads them; tests fill them in.
type HostInfo struct {
	// OOMScoreAdjMin is the lowest oom_score_adj the daemon may give its
	// children: its own value, because lowering it needs a privilege this
	// host refuses even to root.
	OOMScoreAdjMin int
	// AppArmor tells that the kernel has AppArmor enabled; AppArmorProfiles
	// are the loaded profile names.
	AppArmor         bool
	AppArmorProfiles map[string]bool
	// CgroupV2 and Hugetlb are cgroups.Host's UnifiedOnly and Hugetlb.
	CgroupV2, Hugetlb bool
	// MountInfoPath is the mount table used to check mount propagation of
	// mount sources ("" = /proc/self/mountinfo).
	MountInfoPath string
	// DevDir is where privileged containers take host devices from ("" = /dev).
	DevDir string
	// Capabilities is the daemon's bounding set: what privileged
	// containers and "add ALL" get (nil = every known capability). Hosts
	// like this one withhold some (CAP_SYS_RESOURCE), and runc fails to
	// apply a capability it does not hold.
	Capabilities []string
}

// DetectHost reads the host facts from /proc and /sys.
func DetectHost() HostInfo {
	h := HostInfo{MountInfoPath: "/proc/self/mountinfo", DevDir: "/dev"}
	if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			h.OOMScoreAdjMin = v
		}
	}
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.HasPrefix(string(b), "Y") {
		h.AppArmor = true
		h.AppArmorProfiles = loadedAppArmorProfiles("/sys/kernel/security/apparmor/profiles")
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
				if caps, err := parseCapMask(v); err == nil {
					h.Capabilities = caps
				}
			}
		}
	}
	cg := cgroups.DetectHost(cgroups.Root)
	h.CgroupV2, h.Hugetlb = cg.UnifiedOnly, cg.Hugetlb
	return h
}

// loadedAppArmorProfiles parses lines like "name (enforce)".
func loadedAppArmorProfiles(path string) map[string]bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.LastIndex(line, " ("); i > 0 {
			out[line[:i]] = true
		}
	}
	return out
}

package cgroups

import (
	"os"
	"path/filepath"
	"strings"
)

// Host is what the host's cgroup layout allows.
type Host struct {
	// UnifiedOnly tells that the host runs the cgroup2 hierarchy alone;
	// then containers get a private cgroup namespace.
	UnifiedOnly bool
	// Hugetlb tells that the runtime can set hugetlb limits: the
	// controller is mounted on cgroup v1, or enabled on a v2-only host.
	// Hybrid hosts may keep it on cgroup2 alone, where runc (using v1)
	// fails every container given a hugepage limit.
	Hugetlb bool
}

// DetectHost reads the cgroup layout under root (normally Root).
func DetectHost(root string) Host {
	var h Host
	if b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		h.UnifiedOnly = true
		h.Hugetlb = strings.Contains(" "+strings.TrimSpace(string(b))+" ", " hugetlb ")
	} else if st, err := os.Stat(filepath.Join(root, "hugetlb")); err == nil && st.IsDir() {
		h.Hugetlb = true
	}
	return h
}

// HybridUnifiedControllers lists the controllers that the cgroup2
// hierarchy of a hybrid host holds (under root, normally Root); nil on a
// v1-only or v2-only host. crun refuses a hybrid host where this is not
// empty, and runc, which drives v1 there, cannot set their limits.
func HybridUnifiedControllers(root string) []string {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return nil // unified only
	}
	b, err := os.ReadFile(filepath.Join(root, "unified", "cgroup.controllers"))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

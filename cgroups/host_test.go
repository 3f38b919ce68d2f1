package cgroups

import (
	"slices"
	"testing"
)

func TestHybridUnifiedControllers(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // path under the cgroup root → content
		want  []string
	}{
		{"v1 only", map[string]string{"memory/tasks": ""}, nil},
		{"v2 only", map[string]string{"cgroup.controllers": "cpu memory hugetlb\n"}, nil},
		{"hybrid, cgroup2 empty", map[string]string{"memory/tasks": "", "unified/cgroup.controllers": "\n"}, nil},
		{"hybrid, hugetlb on cgroup2", map[string]string{"memory/tasks": "", "unified/cgroup.controllers": "hugetlb\n"}, []string{"hugetlb"}},
		{"hybrid, two on cgroup2", map[string]string{"unified/cgroup.controllers": "hugetlb rdma\n"}, []string{"hugetlb", "rdma"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			if got := HybridUnifiedControllers(root); !slices.Equal(got, tt.want) {
				t.Errorf("HybridUnifiedControllers = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDetectHost(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  Host
	}{
		{"v1 with hugetlb", map[string]string{"memory/tasks": "", "hugetlb/tasks": ""}, Host{Hugetlb: true}},
		{"hybrid, hugetlb on cgroup2 only", map[string]string{"memory/tasks": "", "unified/cgroup.controllers": "hugetlb\n"}, Host{}},
		{"v2 with hugetlb", map[string]string{"cgroup.controllers": "cpu memory hugetlb\n"}, Host{UnifiedOnly: true, Hugetlb: true}},
		{"v2 without hugetlb", map[string]string{"cgroup.controllers": "cpu memory\n"}, Host{UnifiedOnly: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			if got := DetectHost(root); got != tt.want {
				t.Errorf("DetectHost = %+v, want %+v", got, tt.want)
			}
		})
	}
}

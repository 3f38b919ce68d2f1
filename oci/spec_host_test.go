package oci

import (
	"os"
	"path/filepath"
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
			for p, content := range tt.files {
				path := filepath.Join(root, p)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := HybridUnifiedControllers(root); !slices.Equal(got, tt.want) {
				t.Errorf("HybridUnifiedControllers = %q, want %q", got, tt.want)
			}
		})
	}
}

package cgroups

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadStatsFiles(t *testing.T) {
	want := Stats{CPUUsageNanos: 5000, MemoryUsage: 1000, MemoryWorkingSet: 700, MemoryRSS: 400, PageFaults: 9, MajorPageFaults: 2, Pids: 3}
	tests := []struct {
		name    string
		files   map[string]string
		read    func(root string) (*Stats, error)
		want    Stats
		wantErr string
	}{
		{
			name: "v1",
			files: map[string]string{
				"cpuacct/pod/c/cpuacct.usage":        "5000\n",
				"memory/pod/c/memory.usage_in_bytes": "1000\n",
				"memory/pod/c/memory.stat":           "cache 5\nrss 1\ntotal_rss 400\ntotal_inactive_file 300\ntotal_pgfault 9\ntotal_pgmajfault 2\n",
				"pids/pod/c/pids.current":            "3\n",
			},
			read: func(root string) (*Stats, error) { return readCgroup1Stats(root, "/pod/c", 0) },
			want: want,
		},
		{
			name: "v1 without the pids controller",
			files: map[string]string{
				"cpuacct/pod/c/cpuacct.usage":        "5000\n",
				"memory/pod/c/memory.usage_in_bytes": "1000\n",
				"memory/pod/c/memory.stat":           "total_rss 400\ntotal_inactive_file 300\ntotal_pgfault 9\ntotal_pgmajfault 2\n",
			},
			read: func(root string) (*Stats, error) { return readCgroup1Stats(root, "/pod/c", 0) },
			want: Stats{CPUUsageNanos: 5000, MemoryUsage: 1000, MemoryWorkingSet: 700, MemoryRSS: 400, PageFaults: 9, MajorPageFaults: 2},
		},
		{
			name:    "v1 cgroup gone",
			files:   map[string]string{},
			read:    func(root string) (*Stats, error) { return readCgroup1Stats(root, "/pod/c", 0) },
			wantErr: "no such file",
		},
		{
			name: "v1 garbage",
			files: map[string]string{
				"cpuacct/pod/c/cpuacct.usage": "lots\n",
			},
			read:    func(root string) (*Stats, error) { return readCgroup1Stats(root, "/pod/c", 0) },
			wantErr: "parse",
		},
		{
			name: "v2",
			files: map[string]string{
				"c/cpu.stat":       "usage_usec 5\nuser_usec 3\nsystem_usec 2\n",
				"c/memory.current": "1000\n",
				"c/memory.stat":    "anon 400\nfile 500\ninactive_file 300\npgfault 9\npgmajfault 2\n",
				"c/pids.current":   "3\n",
			},
			read: func(root string) (*Stats, error) { return readCgroup2Stats(filepath.Join(root, "c"), 0) },
			want: want,
		},
		{
			name: "inactive file above usage",
			files: map[string]string{
				"c/cpu.stat":       "usage_usec 5\n",
				"c/memory.current": "100\n",
				"c/memory.stat":    "inactive_file 300\n",
			},
			read: func(root string) (*Stats, error) { return readCgroup2Stats(filepath.Join(root, "c"), 0) },
			want: Stats{CPUUsageNanos: 5000, MemoryUsage: 100},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			got, err := tc.read(root)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Timestamp.IsZero() {
				t.Error("no timestamp")
			}
			got.Timestamp = tc.want.Timestamp
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

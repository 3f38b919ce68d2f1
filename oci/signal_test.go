package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCgroupNamesContainer(t *testing.T) {
	const id = "c0ffee"
	tests := []struct {
		name, text string
		want       bool
	}{
		{"v1 hybrid", "12:pids:/kubepods/pod1/c0ffee\n11:memory:/kubepods/pod1/c0ffee\n1:name=systemd:/\n0::/\n", true},
		{"v2 systemd", "0::/kubepods.slice/kubepods-pod1.slice/criserver-c0ffee.scope\n", true},
		{"only one hierarchy", "3:cpu:/\n2:memory:/criserver/c0ffee\n", true},
		{"pod cgroup", "12:pids:/kubepods/pod1\n0::/kubepods/pod1\n", false},
		{"host", "0::/init.scope\n", false},
		{"malformed", "garbage\n\n", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		if got := cgroupNamesContainer([]byte(tc.text), id); got != tc.want {
			t.Errorf("%s: cgroupNamesContainer = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSignalInit: the init process gets the signal straight through its
// pidfd, and a pid file naming any other process (here the test's own, or
// one that has ended) is refused without signalling it.
func TestSignalInit(t *testing.T) {
	r := testRuntime(t)
	ctx := context.Background()
	id, logPath, cg := createTest(t, r, `trap "exit 7" TERM; echo ready; sleep 600 & wait`, nil)
	if err := r.Start(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the trap to be set", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "ready")
	})
	if err := r.signalInit(id, syscall.SIGTERM); err != nil {
		t.Fatalf("signalInit: %v", err)
	}
	if st := waitExited(t, r, id, cg); st.Code != 7 {
		t.Errorf("exit code %d, want 7 (the trap's)", st.Code)
	}

	pidfile := filepath.Join(r.BundleDir(id), "pidfile")
	if err := os.WriteFile(pidfile, fmt.Appendf(nil, "%d", os.Getpid()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.signalInit(id, syscall.SIGCONT); !errors.Is(err, errNotContainerInit) {
		t.Errorf("signalInit with the test's own pid = %v, want errNotContainerInit", err)
	}
	if err := os.WriteFile(pidfile, []byte("999999999"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.signalInit(id, syscall.SIGCONT); err == nil {
		t.Error("signalInit with a pid no process has succeeded")
	}
}

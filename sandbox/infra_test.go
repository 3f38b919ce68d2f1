package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSmallInfraBinary runs pods with cmd/criserver-infra instead of a
// re-executed daemon: same command line, same readiness, same signals.
func TestSmallInfraBinary(t *testing.T) {
	requireRoot(t)
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), InfraBinaryName)
	cmd := exec.Command(gobin, "build", "-o", bin, "../cmd/criserver-infra")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("build criserver-infra: %v: %s", err, out)
	}
	root := t.TempDir()
	m, err := New(context.Background(), Options{Root: filepath.Join(root, "r"), State: filepath.Join(root, "s"), Network: &fakeNetwork{}, InfraBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := m.Run(context.Background(), podConfig("small"), "")
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(sb.InfraPID) + "/exe")
	if !infraAlive(sb.InfraPID, sb.ID) || !strings.HasSuffix(exe, InfraBinaryName) {
		t.Fatalf("infra %d runs %q", sb.InfraPID, exe)
	}
	unix.Kill(sb.InfraPID, unix.SIGTERM)
	time.Sleep(50 * time.Millisecond)
	if !infraAlive(sb.InfraPID, sb.ID) {
		t.Errorf("small infra died of SIGTERM")
	}
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(sb.InfraPID) + "/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmRSS") {
			t.Log(l)
		}
	}
	if err := m.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m, sb)
}

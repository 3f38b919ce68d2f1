package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// buildTags match the Makefile's, plus fault injection for crash tests.
const buildTags = "containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper,faultinject"

var (
	buildOnce sync.Once
	binPath   string
	buildDir  string // set when Binary built into a temporary directory
	buildErr  error
)

// Binary returns the criserver binary under test, building it once per
// test process. CRISERVER_BINARY names a prebuilt one instead.
func Binary() (string, error) {
	buildOnce.Do(func() {
		if p := os.Getenv("CRISERVER_BINARY"); p != "" {
			binPath = p
			return
		}
		binPath, buildErr = build()
	})
	return binPath, buildErr
}

// RemoveBuilt deletes what Binary built (about 36 MB per test run). The
// package's TestMain calls it after the tests; a prebuilt binary is kept.
func RemoveBuilt() error {
	if buildDir == "" {
		return nil
	}
	return os.RemoveAll(buildDir)
}

func build() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "criserver-bin-")
	if err != nil {
		return "", err
	}
	buildDir = dir
	// The daemon runs criserver-infra from beside its own binary.
	for _, name := range []string{"criserver", "criserver-infra"} {
		cmd := exec.Command(goTool(), "build", "-tags", buildTags, "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %v\n%s", name, err, b)
		}
	}
	return filepath.Join(dir, "criserver"), nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// ModuleRoot is the directory holding the project's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the criserver module")
	}
	return filepath.Dir(mod), nil
}

// BuildCommand builds the main package pkg of this module (a path such as
// ./test/e2e/nriplugin) into a temporary directory of t.
func BuildCommand(t testing.TB, pkg string) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command(goTool(), "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

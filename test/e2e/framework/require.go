// Package framework runs a real criserver daemon, a local registry and
// test images for the end-to-end tests in test/e2e.
package framework

import (
	"os"
	"os/exec"
	"testing"
)

// requiredEnv makes missing prerequisites fail the suite instead of
// skipping it, so CI cannot pass by testing nothing.
const requiredEnv = "CRISERVER_E2E_REQUIRED"

// Binaries the e2e suite drives, by path or by name on PATH.
var prerequisites = []string{"runc", "conmon", "docker-registry", "/bin/busybox", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", "/usr/lib/cni/portmap", "iptables-save"}

// Require skips t when the machine cannot run e2e tests (not root, a tool
// missing), or fails it when CRISERVER_E2E_REQUIRED=1.
func Require(t testing.TB) {
	t.Helper()
	stop := unsupported(t)
	if os.Geteuid() != 0 {
		stop("e2e tests need root")
	}
	for _, p := range prerequisites {
		if _, err := exec.LookPath(p); err != nil {
			stop("e2e prerequisite %s: %v (run hack/install-deps.sh)", p, err)
		}
	}
}

// Unsupported skips t because the host cannot run what it tests, or fails
// it when CRISERVER_E2E_REQUIRED=1: CI prepares its machines for all of it.
func Unsupported(t testing.TB, format string, args ...any) {
	t.Helper()
	unsupported(t)(format, args...)
}

func unsupported(t testing.TB) func(string, ...any) {
	if os.Getenv(requiredEnv) == "1" {
		return t.Fatalf
	}
	return t.Skipf
}

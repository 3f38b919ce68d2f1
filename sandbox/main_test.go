package sandbox

import (
	"os"
	"testing"
)

// TestMain lets the test binary serve as the infra process, as the daemon
// binary does (cmd/criserver/infra.go).
func TestMain(m *testing.M) {
	if len(os.Args) > 0 && os.Args[0] == InfraArgv0 {
		os.Exit(RunInfra())
	}
	os.Exit(m.Run())
}

package main

import (
	"os"

	"github.com/criserver/criserver/sandbox"
)

// The daemon re-executes itself from /proc/self/exe as a pod's infra
// process (PID 1 of a shared PID namespace) under argv[0] InfraArgv0; that
// must happen before anything else of the daemon starts.
func init() {
	if len(os.Args) > 0 && os.Args[0] == sandbox.InfraArgv0 {
		os.Exit(sandbox.RunInfra())
	}
}

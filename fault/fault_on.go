//go:build faultinject

package fault

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

var crashPlan = sync.OnceValue(func() *plan {
	p, err := parsePlan(os.Getenv(EnvCrash))
	if err != nil {
		fmt.Fprintf(os.Stderr, "fault: ignoring %s: %v\n", EnvCrash, err)
		return &plan{}
	}
	return p
})

// Crash kills the process with SIGKILL when point is selected by
// CRISERVER_FAULT_CRASH.
func Crash(point string) {
	if !crashPlan().hit(point) {
		return
	}
	fmt.Fprintf(os.Stderr, "fault: crashing at %s\n", point)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; never run past the point
}

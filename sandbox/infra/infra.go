// Package infra is the infra process of pods that share one PID namespace:
// PID 1 of that namespace. It imports the standard library alone, so that
// the small cmd/criserver-infra binary built from it starts fast and stays
// near the Go runtime's own memory use.
package infra

import (
	"os"
	"os/signal"
	"syscall"
)

// Argv0 is the infra process's argv[0]; its only argument is the pod ID.
// The daemon finds its infra processes by this command line.
const Argv0 = "criserver-infra"

// Ready is what the infra process writes to stdout once its signal
// handling is in place; until then a SIGTERM would still end it.
const Ready = "ready\n"

// Run reaps the orphans the kernel hands to PID 1 and ignores the signals
// a container could send to end the pod's PID namespace; the daemon ends
// it with SIGKILL. It never returns.
func Run() int {
	// Started from a file descriptor (in a pod with a user namespace) its
	// command name would be the descriptor's number; ps and leak checks
	// look for this one.
	_ = os.WriteFile("/proc/self/comm", []byte(Argv0), 0)
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE)
	children := make(chan os.Signal, 16)
	signal.Notify(children, syscall.SIGCHLD)
	// Tell the daemon the signals are set up, then let go of its pipe.
	os.Stdout.Write([]byte(Ready))
	os.Stdout.Close()
	for range children {
		reap()
	}
	return 0
}

// reap collects every exited child; one SIGCHLD may stand for many.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

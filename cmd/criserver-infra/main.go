// Command criserver-infra is the infra process of pods that share one PID
// namespace. The daemon runs it when it is installed next to the criserver
// binary (or named by [sandbox] infra_binary); otherwise the daemon
// re-executes itself, which works alike but costs more memory per pod.
package main

import (
	"os"

	"github.com/criserver/criserver/sandbox/infra"
)

func main() {
	os.Exit(infra.Run())
}

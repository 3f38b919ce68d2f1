package oci

import (
	"context"
	"io"
	"testing"
	"time"
)

// A cancel can come at any moment of `runtime exec`, also before the
// runtime has written the pid file: the process it starts must not
// survive. Deadlines from 10ms to 300ms land all along the way.
func TestExecCancelWhileStarting(t *testing.T) {
	r := testRuntime(t)
	id := startTest(t, r, nil)
	for ms := 10; ms <= 300; ms += 10 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
		stdinR, stdinW := io.Pipe()
		_, err := r.Exec(ctx, "", id, ExecOptions{Cmd: []string{"/bin/busybox", "sleep", "4343"}, Stdin: stdinR, Stdout: io.Discard})
		cancel()
		stdinW.Close()
		if err == nil {
			t.Fatalf("deadline %dms: exec of sleep 4343 returned without error", ms)
		}
		if pids := processesWithCmdline("/bin/busybox\x00sleep\x004343"); len(pids) > 0 {
			t.Fatalf("deadline %dms: %v; exec'd process still running: %v", ms, err, pids)
		}
	}
}

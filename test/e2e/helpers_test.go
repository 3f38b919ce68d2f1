package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/criserver/criserver/test/e2e/framework"
)

// eventually fails the test unless cond holds within 15 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !framework.Poll(15*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// procAlive tells whether a process pid exists (a zombie included).
func procAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// procIs tells whether pid is a live process named comm: a pid reused by
// another program does not count.
func procIs(pid int, comm string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(b)) == comm
}

// cmdlinePids lists pids whose NUL-separated command line starts with prefix.
func cmdlinePids(prefix string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.HasPrefix(string(b), prefix) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// fdCount is how many file descriptors pid holds.
func fdCount(t testing.TB, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// httpGetWithin GETs url until it answers 200, with the body want unless
// want is "", or within has passed: the server may still be starting. It
// returns the last body and, when it gave up, why.
func httpGetWithin(url, want string, within time.Duration) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	var body string
	var last error
	framework.Poll(within, func() bool {
		resp, err := c.Get(url)
		if err != nil {
			last = err
			return false
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		body, last = string(b), err
		if err == nil && (resp.StatusCode != http.StatusOK || want != "" && body != want) {
			last = fmt.Errorf("status %d, body %q", resp.StatusCode, body)
		}
		return last == nil
	})
	if last != nil {
		return body, fmt.Errorf("GET %s: %w", url, last)
	}
	return body, nil
}

// criserverCmd runs the criserver binary with args and returns its
// stdout, stderr and exit code.
func criserverCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	bin, err := framework.Binary()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run criserver %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// mustCriserver runs criserver and fails the test unless it exits 0.
func mustCriserver(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := criserverCmd(t, args...)
	if code != 0 {
		t.Fatalf("criserver %v: exit %d: %s", args, code, errOut)
	}
	return out
}

package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/criserver/criserver/test/e2e/framework"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := framework.RemoveBuilt(); err != nil {
		fmt.Fprintf(os.Stderr, "remove the daemon built for the tests: %v\n", err)
	}
	os.Exit(code)
}

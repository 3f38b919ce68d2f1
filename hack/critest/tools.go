//go:build tools

// Package tools pins cri-tools for `make test-critest`: critest (the ginkgo
// test binary of cmd/critest) and crictl are built from this module so the
// daemon's go.mod does not carry cri-tools' dependencies.
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
	_ "sigs.k8s.io/cri-tools/cmd/critest"
)

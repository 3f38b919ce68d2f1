//go:build tools

// Package tools pins golangci-lint in a module of its own, so the daemon's
// go.mod does not carry the linter's dependencies.
package tools

import _ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"

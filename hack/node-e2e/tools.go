//go:build tools

// Package tools pins Kubernetes for `make test-node-e2e`: the node e2e
// test binary (test/e2e_node) and the kubelet are built from this module so
// the daemon's go.mod does not carry Kubernetes' dependencies.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/test/e2e_node"
	_ "k8s.io/kubernetes/test/images/agnhost"
)

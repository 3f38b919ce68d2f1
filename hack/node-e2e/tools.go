//go:build tools

// Package tools pins Kubernetes for `make test-node-e2e` and `make cluster`:
// the node e2e test binary (test/e2e_node), the kubelet and the control
// plane (apiserver, controller-manager, scheduler), kube-proxy and kubectl
// are built from this module so the daemon's go.mod does not carry
// Kubernetes' dependencies.
package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/test/e2e_node"
	_ "k8s.io/kubernetes/test/images/agnhost"
)

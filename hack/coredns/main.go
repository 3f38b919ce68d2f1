// Command coredns is CoreDNS with only the plugins the local cluster's
// Corefile (hack/cluster) uses. Each plugin registers itself when imported;
// leaving out the others keeps the build small and makes a Corefile that
// asks for one of them (forward, for instance) fail to load rather than
// send queries off the machine.
package main

import (
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}

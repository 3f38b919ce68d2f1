// Command etcd is etcd's server, built from this module so that the local
// cluster (hack/cluster) runs the etcd version pinned here and the daemon's
// go.mod does not carry etcd's dependencies.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

// Command containerdconf writes the config.toml of the containerd the local
// cluster (hack/cluster, CLUSTER_RUNTIME=containerd) runs on each node,
// rendered by test/containerdconf as the benchmark's and the e2e
// framework's are. Everything is under -dir unless a flag moves it; the
// config goes to standard output.
//
//	containerdconf -dir NODE/containerd -runc $(command -v runc) -sandbox-image IMAGE \
//	    [-address SOCKET] [-cni-conf-dir DIR] [-log-level LEVEL] [-registry-config-path DIR] \
//	    [-runtime NAME]... >NODE/containerd/config.toml
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/criserver/criserver/test/containerdconf"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "containerdconf:", err)
		os.Exit(2)
	}
}

// names is a repeatable flag.
type names []string

func (n *names) String() string     { return fmt.Sprint(*n) }
func (n *names) Set(v string) error { *n = append(*n, v); return nil }

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("containerdconf", flag.ContinueOnError)
	dir := fs.String("dir", "", "containerd's directory: root, state, opt, socket and CNI configuration under it (required)")
	runc := fs.String("runc", "", "the runc binary every runtime handler runs (required)")
	sandbox := fs.String("sandbox-image", "", "the pause image (required)")
	address := fs.String("address", "", "the CRI socket (default DIR/containerd.sock)")
	cniConf := fs.String("cni-conf-dir", "", "the CNI configuration directory (default DIR/cni)")
	logLevel := fs.String("log-level", "", "containerd's log level (default containerd's, info)")
	registry := fs.String("registry-config-path", "", "the directory of hosts.toml files (default none)")
	var extra names
	fs.Var(&extra, "runtime", "a runtime handler besides runc, running the same runc (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *dir == "" || *runc == "" {
		return errors.New("-dir and -runc are required")
	}
	c := containerdconf.Under(*dir, *runc)
	c.SandboxImage, c.LogLevel, c.RegistryConfigPath = *sandbox, *logLevel, *registry
	if *address != "" {
		c.Address = *address
	}
	if *cniConf != "" {
		c.CNIConfDir = *cniConf
	}
	for _, name := range extra {
		r := c.Runtimes[0]
		r.Name = name
		c.Runtimes = append(c.Runtimes, r)
	}
	data, err := c.Render()
	if err != nil {
		return err
	}
	_, err = out.Write(data)
	return err
}

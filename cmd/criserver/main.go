// Command criserver is a Kubernetes container runtime serving the CRI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "diff":
			return runDiff(context.Background(), args[1:], stdout, stderr)
		case "df":
			return runDf(context.Background(), args[1:], stdout, stderr)
		case "image":
			return runImage(context.Background(), args[1:], stdout, stderr)
		}
	}
	printConfig := len(args) > 0 && args[0] == "config"
	if printConfig {
		args = args[1:]
	}
	opts, err := parseFlags("criserver", args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "criserver:", err)
		return 2
	}
	if opts.showVersion {
		fmt.Fprintln(stdout, "criserver", version)
		return 0
	}
	cfg, err := loadConfig(opts.configPath, opts.set["config"])
	if err == nil {
		err = opts.apply(&cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, "criserver:", err)
		return 1
	}
	if printConfig {
		out, err := cfg.encode()
		if err != nil {
			fmt.Fprintln(stderr, "criserver:", err)
			return 1
		}
		stdout.Write(out)
		return 0
	}
	defer klog.Flush()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg); err != nil {
		klog.ErrorS(err, "criserver failed")
		fmt.Fprintln(stderr, "criserver:", err)
		return 1
	}
	return 0
}

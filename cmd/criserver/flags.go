package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"k8s.io/klog/v2"
)

// stringList is a flag that may be repeated or given as a comma list.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// options are the command line: which config file, and overrides of it.
type options struct {
	configPath     string
	showVersion    bool
	listen         string
	root           string
	state          string
	cniConfDir     string
	cniBinDirs     stringList
	registriesConf string
	metricsAddress string
	cgroupDriver   string

	set map[string]bool // flags given explicitly
}

func parseFlags(name string, args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", defaultConfigPath, "config file; drop-ins are read from config.d/*.toml beside it")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&o.listen, "listen", "", "unix socket serving the CRI (config: listen)")
	fs.StringVar(&o.root, "root", "", "persistent data directory (config: root)")
	fs.StringVar(&o.state, "state", "", "runtime state directory (config: state)")
	fs.StringVar(&o.cniConfDir, "cni-conf-dir", "", "CNI network configuration directory (config: cni.conf_dir)")
	fs.Var(&o.cniBinDirs, "cni-bin-dir", "CNI plugin directory; repeat or comma-separate (config: cni.bin_dirs)")
	fs.StringVar(&o.registriesConf, "registries-config", "", "containers-registries.conf(5) file (config: image.registries_config)")
	fs.StringVar(&o.metricsAddress, "metrics-address", "", "host:port serving Prometheus metrics (config: metrics_address)")
	fs.StringVar(&o.cgroupDriver, "cgroup-driver", "", "cgroupfs or systemd (config: cgroup_driver)")
	klog.InitFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

// apply overrides cfg with the flags that were given, then validates.
func (o *options) apply(cfg *Config) error {
	overrides := []struct {
		flag string
		dst  *string
		val  string
	}{
		{"listen", &cfg.Listen, o.listen},
		{"root", &cfg.Root, o.root},
		{"state", &cfg.State, o.state},
		{"cni-conf-dir", &cfg.CNI.ConfDir, o.cniConfDir},
		{"registries-config", &cfg.Image.RegistriesConfig, o.registriesConf},
		{"metrics-address", &cfg.MetricsAddress, o.metricsAddress},
		{"cgroup-driver", &cfg.CgroupDriver, o.cgroupDriver},
	}
	for _, ov := range overrides {
		if o.set[ov.flag] {
			*ov.dst = ov.val
		}
	}
	if o.set["cni-bin-dir"] {
		cfg.CNI.BinDirs = o.cniBinDirs
	}
	// Derived paths follow a --state given on the command line too.
	cfg.fillDerived()
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("command line: %w", err)
	}
	return nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/criserver/criserver/imagestore"
)

// storeFlags are the flags of the commands that read a store (diff, df):
// they work whether the daemon runs or not, and only read.
type storeFlags struct {
	fs         *flag.FlagSet
	configPath string
	root       string
	json       bool
}

func newStoreFlags(name, usage string, stderr io.Writer) *storeFlags {
	f := &storeFlags{fs: flag.NewFlagSet("criserver "+name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: criserver %s\n", usage)
		f.fs.PrintDefaults()
	}
	f.fs.StringVar(&f.configPath, "config", defaultConfigPath, "config file whose root is read when --root is not given")
	f.fs.StringVar(&f.root, "root", "", "the store's root directory (default: root from the config)")
	f.fs.BoolVar(&f.json, "json", false, "print JSON")
	return f
}

func (f *storeFlags) parse(args []string) ([]string, error) { return parseInterspersed(f.fs, args) }

// parseInterspersed accepts flags before and after the positional
// arguments, and returns those.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (f *storeFlags) given(name string) bool { return flagGiven(f.fs, name) }

// flagGiven reports whether the command line set the flag.
func flagGiven(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(fl *flag.Flag) { found = found || fl.Name == name })
	return found
}

// openView opens the store under --root, or under the root the daemon's
// config names, read as the daemon reads it.
func (f *storeFlags) openView() (*imagestore.View, string, error) {
	root := f.root
	if !f.given("root") {
		cfg, err := loadConfig(f.configPath, f.given("config"))
		if err != nil {
			return nil, "", err
		}
		root = cfg.Root
	}
	if root == "" {
		return nil, "", errors.New("--root: empty path")
	}
	v, err := imagestore.OpenView(root)
	return v, root, err
}

// fail prints err the way every criserver command does and returns the
// exit code: 2 for a usage error, 1 otherwise.
func fail(stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "criserver:", err)
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// usageError is a command line that names nothing to do.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

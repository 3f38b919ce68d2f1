package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/criserver/criserver/imagestore"
)

// emptyStore is a store with nothing pulled, as a daemon leaves it.
func emptyStore(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if _, err := imagestore.New(context.Background(), imagestore.DefaultConfig(), root); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestStoreCommands(t *testing.T) {
	store := emptyStore(t)
	notStore := t.TempDir()
	cfgDir := t.TempDir()
	configRootedAt := func(root string) string {
		p := filepath.Join(cfgDir, strings.ReplaceAll(root, "/", "_")+".toml")
		writeFile(t, p, "root = \""+root+"\"\n")
		return p
	}
	badConfig := filepath.Join(cfgDir, "bad", "config.toml")
	writeFile(t, badConfig, "rooot = \"/x\"\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string // substring, when set
		stderr   string // substring, when set
		jsonDump bool   // stdout must be JSON
	}{
		{name: "df of an empty store", args: []string{"df", "--root", store}, code: 0, stdout: "Containers   0"},
		{name: "df --json", args: []string{"df", "--json", "--root", store}, code: 0, jsonDump: true},
		{name: "df -v after the flags", args: []string{"df", "--root", store, "-v"}, code: 0, stdout: "Layers:"},
		{name: "df root from the config", args: []string{"df", "--config", configRootedAt(store)}, code: 0, stdout: "Store " + store},
		{name: "df of what is no store", args: []string{"df", "--root", notStore}, code: 1, stderr: notStore + " is not a criserver store"},
		{name: "df, config root no store", args: []string{"df", "--config", configRootedAt(notStore)}, code: 1, stderr: "not a criserver store"},
		{name: "df with a bad config", args: []string{"df", "--config", badConfig}, code: 1, stderr: "unknown key rooot"},
		{name: "df argument", args: []string{"df", "--root", store, "extra"}, code: 2, stderr: "unexpected argument"},
		{name: "df help", args: []string{"df", "-h"}, code: 0, stderr: "Usage: criserver df"},
		{name: "diff without a container", args: []string{"diff", "--root", store}, code: 2, stderr: "name one container"},
		{name: "diff --name without --pod", args: []string{"diff", "--root", store, "--name", "x"}, code: 2, stderr: "go together"},
		{name: "diff of an ID and a name", args: []string{"diff", "--root", store, "--name", "x", "--pod", "p", "abc"}, code: 2, stderr: "name one container"},
		{name: "diff of an unknown container", args: []string{"diff", "--root", store, "abc"}, code: 1, stderr: `"abc"`},
		{name: "diff of an unknown pod", args: []string{"diff", "--root", store, "--name", "x", "--pod", "p"}, code: 1, stderr: `no pod "p"`},
		{name: "diff of what is no store", args: []string{"diff", "--root", notStore, "abc"}, code: 1, stderr: "not a criserver store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("criserver %v: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout with %q, stderr with %q",
					tt.args, code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
			}
			if tt.jsonDump && !json.Valid(out.Bytes()) {
				t.Errorf("stdout is not JSON: %s", out.String())
			}
		})
	}
}

func TestHumanBytes(t *testing.T) {
	for b, want := range map[int64]string{
		0: "0B", 999: "999B", 1000: "1kB", 1234: "1.23kB", 999_499: "999kB", 999_500: "1MB",
		12_345_678: "12.3MB", 5 << 30: "5.37GB",
	} {
		if got := humanBytes(b); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", b, got, want)
		}
	}
}

// Command creations summarises an `strace -f -y` log of the criserver daemon:
// the files and directories the daemon itself created (its own threads,
// not the programs it starts), grouped by path with IDs and temp suffixes
// folded, and divided by the number of pods and containers driven. It is
// the second half of hack/creations/count.sh.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// event is one finished system call of a daemon thread that makes or
// removes a name.
type event struct {
	call string // create (openat O_CREAT), mkdir, symlink, link, mknod, rename, unlink
	path string // folded
}

var (
	lineRE     = regexp.MustCompile(`^(\d+)\s+(.*)$`)
	resumedRE  = regexp.MustCompile(`^<\.\.\. (\w+) resumed>(.*)$`)
	callRE     = regexp.MustCompile(`^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)`)
	quotedRE   = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	dirfdRE    = regexp.MustCompile(`^(-?\d+|AT_FDCWD)(?:<([^>]*)>)?$`)
	hexIDRE    = regexp.MustCompile(`[0-9a-f]{64}`)
	tempRE     = regexp.MustCompile(`(\.tmp-|\btmp-)[^/]*`)
	hashRE     = regexp.MustCompile(`[0-9a-f]{32,}`)
	shortRE    = regexp.MustCompile(`/l/[A-Z0-9]{26}`)
	uuidRE     = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	numberedRE = regexp.MustCompile(`/\d{3,}(/|$)`)
)

func main() {
	pods := flag.Int("pods", 1, "pod sandboxes driven in the traced run")
	ctrs := flag.Int("containers", 1, "containers driven in the traced run")
	podIDs := flag.String("pod-ids", "", "file with the pod IDs, one a line: their IDs print as <pod>")
	root := flag.String("root", "", "daemon root, printed as <root>")
	state := flag.String("state", "", "daemon state dir, printed as <state>")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: creations [flags] STRACE-LOG")
		os.Exit(2)
	}
	if err := run(os.Stdout, flag.Arg(0), *podIDs, folder{root: *root, state: *state}, *pods, *ctrs); err != nil {
		fmt.Fprintln(os.Stderr, "creations:", err)
		os.Exit(1)
	}
}

// run reports the strace log at path; podIDs names the file of pod IDs.
func run(w io.Writer, path, podIDs string, fold folder, pods, ctrs int) error {
	fold.pods = map[string]bool{}
	if podIDs != "" {
		b, err := os.ReadFile(podIDs)
		if err != nil {
			return err
		}
		for _, id := range strings.Fields(string(b)) {
			fold.pods[id] = true
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	events, err := parse(f)
	if err != nil {
		return err
	}
	report(w, events, fold.fold, pods, ctrs)
	return nil
}

// parse reads the log and returns the daemon threads' events. A thread is
// the daemon's unless it descends from a clone without CLONE_THREAD (a
// child process: conmon, the runtime, CNI plugins).
func parse(r io.Reader) ([]event, error) {
	external := map[int]bool{}
	pending := map[int]string{}
	var events []event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		text := m[2]
		if head, ok := strings.CutSuffix(text, " <unfinished ...>"); ok {
			pending[pid] = head
			continue
		}
		if rm := resumedRE.FindStringSubmatch(text); rm != nil {
			text = pending[pid] + rm[2]
			delete(pending, pid)
		}
		cm := callRE.FindStringSubmatch(text)
		if cm == nil {
			continue
		}
		call, args, ret := cm[1], cm[2], cm[3]
		if call == "clone" || call == "clone3" || call == "vfork" || call == "fork" {
			child, err := strconv.Atoi(ret)
			if err == nil && child > 0 && (external[pid] || !strings.Contains(args, "CLONE_THREAD")) {
				external[child] = true
			}
			continue
		}
		if external[pid] || ret == "?" || strings.HasPrefix(ret, "-") {
			continue
		}
		if ev, ok := toEvent(call, args); ok {
			events = append(events, ev)
		}
	}
	return events, sc.Err()
}

// toEvent turns a successful call into an event, if it makes or removes a
// name.
func toEvent(call, args string) (event, bool) {
	paths := pathArgs(args)
	switch call {
	case "openat":
		if !strings.Contains(args, "O_CREAT") || len(paths) < 1 {
			return event{}, false
		}
		return event{call: "create", path: paths[0]}, true
	case "mkdirat", "symlinkat", "linkat", "mknodat", "unlinkat":
		if len(paths) < 1 {
			return event{}, false
		}
		name := strings.TrimSuffix(call, "at")
		p := paths[len(paths)-1]
		if call == "unlinkat" && strings.Contains(args, "AT_REMOVEDIR") {
			name = "rmdir"
		}
		if call == "unlinkat" || call == "mkdirat" || call == "mknodat" {
			p = paths[0]
		}
		return event{call: name, path: p}, true
	case "renameat", "renameat2":
		if len(paths) < 2 {
			return event{}, false
		}
		return event{call: "rename", path: paths[0] + " -> " + paths[1]}, true
	}
	return event{}, false
}

// pathArgs returns each path argument made absolute with its dirfd's
// path as `strace -y` prints it.
func pathArgs(args string) []string {
	var out []string
	parts := splitArgs(args)
	for i, a := range parts {
		q := quotedRE.FindStringSubmatch(a)
		if q == nil || !strings.HasPrefix(strings.TrimSpace(a), `"`) {
			continue
		}
		p := q[1]
		if !strings.HasPrefix(p, "/") && i > 0 {
			if d := dirfdRE.FindStringSubmatch(strings.TrimSpace(parts[i-1])); len(d) > 2 && d[2] != "" {
				p = d[2] + "/" + p
			}
		}
		out = append(out, p)
	}
	return out
}

// splitArgs splits a call's arguments at top-level commas.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '{' || c == '[' || c == '<':
			depth++
		case c == '}' || c == ']' || c == '>':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// report prints the events grouped by call and folded path, with counts
// per pod and per container, and the totals per call.
func report(w io.Writer, events []event, fold func(string) string, pods, ctrs int) {
	type key struct{ call, path string }
	counts := map[key]int{}
	totals := map[string]int{}
	virtual := 0
	for _, ev := range events {
		if isVirtual(ev.path) {
			virtual++
			continue
		}
		p := ev.path
		if before, after, ok := strings.Cut(p, " -> "); ok {
			p = fold(before) + " -> " + fold(after)
		} else {
			p = fold(p)
		}
		counts[key{ev.call, p}]++
		totals[ev.call]++
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].call != keys[j].call {
			return keys[i].call < keys[j].call
		}
		return keys[i].path < keys[j].path
	})
	fmt.Fprintf(w, "%-8s %6s %8s  %s\n", "call", "count", "per pod", "path")
	for _, k := range keys {
		fmt.Fprintf(w, "%-8s %6d %8.2f  %s\n", k.call, counts[k], float64(counts[k])/float64(pods), k.path)
	}
	fmt.Fprintf(w, "\ntotals (%d pods, %d containers):\n", pods, ctrs)
	calls := make([]string, 0, len(totals))
	for c := range totals {
		calls = append(calls, c)
	}
	sort.Strings(calls)
	made := 0
	for _, c := range calls {
		fmt.Fprintf(w, "  %-8s %6d  %.2f per pod\n", c, totals[c], float64(totals[c])/float64(pods))
		if c == "create" || c == "mkdir" || c == "symlink" || c == "link" || c == "mknod" {
			made += totals[c]
		}
	}
	fmt.Fprintf(w, "  names made (create+mkdir+symlink+link+mknod): %d, %.2f per pod\n", made, float64(made)/float64(pods))
	fmt.Fprintf(w, "  left out: %d calls on /sys, /proc and /dev (cgroup and sysctl writes open with O_CREAT)\n", virtual)
}

// isVirtual tells whether p is on a file system with no inodes on disk.
func isVirtual(p string) bool {
	for _, prefix := range []string{"/sys/", "/proc/", "/dev/"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// folder prints paths with the IDs, temp names and hashes that differ from
// one object to the next folded, so that equal paths group.
type folder struct {
	root, state string
	pods        map[string]bool
}

func (f folder) fold(p string) string {
	for dir, name := range map[string]string{f.root: "<root>", f.state: "<state>"} {
		if rest, ok := strings.CutPrefix(p, dir); dir != "" && ok && (rest == "" || rest[0] == '/') {
			p = name + rest
		}
	}
	// Pod IDs first: in "pod<id>" no boundary sets the ID apart.
	for id := range f.pods {
		p = strings.ReplaceAll(p, id, "<pod>")
	}
	p = hexIDRE.ReplaceAllString(p, "<id>")
	p = hashRE.ReplaceAllString(p, "<hash>")
	p = tempRE.ReplaceAllString(p, "${1}*")
	p = shortRE.ReplaceAllString(p, "/l/<short>")
	p = uuidRE.ReplaceAllString(p, "<uuid>")
	return numberedRE.ReplaceAllString(p, "/<n>$1")
}

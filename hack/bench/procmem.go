package main

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// proc is what the harness needs to know of one process.
type proc struct {
	pid, ppid int
	comm      string
	cgroups   []string // the path of each hierarchy in /proc/<pid>/cgroup
}

func listProcs() []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := readProc(pid)
		if err != nil {
			continue // exited meanwhile
		}
		out = append(out, p)
	}
	return out
}

func readProc(pid int) (proc, error) {
	p := proc{pid: pid}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// comm is in parentheses and may hold spaces; fields follow the last ')'.
	s := string(stat)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return p, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	p.comm = s[open+1 : closing]
	fields := strings.Fields(s[closing+1:])
	if len(fields) < 2 {
		return p, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	p.ppid, _ = strconv.Atoi(fields[1])
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return p, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 {
			p.cgroups = append(p.cgroups, parts[2])
		}
	}
	return p, nil
}

// inCgroupOf reports which of ids names the leaf of one of p's cgroups.
// Both runtimes put a container (and containerd a sandbox) in a cgroup
// named by its ID, under the pod's cgroup parent.
func (p proc) inCgroupOf(ids map[string]bool) bool {
	for _, cg := range p.cgroups {
		if ids[path.Base(cg)] {
			return true
		}
	}
	return false
}

// helperProcs finds the per-pod helper processes of one runtime: the
// parents of its containers' processes (conmon, or containerd's shim) and
// the processes of its sandboxes (containerd's pause). The daemon itself is
// never a helper. Workload processes are not helpers either.
func helperProcs(procs []proc, sandboxIDs, containerIDs map[string]bool, daemonPID int) []int {
	byPID := map[int]proc{}
	for _, p := range procs {
		byPID[p.pid] = p
	}
	helpers := map[int]bool{}
	for _, p := range procs {
		switch {
		case p.inCgroupOf(sandboxIDs):
			helpers[p.pid] = true
			if parent, ok := byPID[p.ppid]; ok && !parent.inCgroupOf(sandboxIDs) && isHelperParent(parent, daemonPID) {
				helpers[parent.pid] = true
			}
		case p.inCgroupOf(containerIDs):
			if parent, ok := byPID[p.ppid]; ok && !parent.inCgroupOf(containerIDs) && isHelperParent(parent, daemonPID) {
				helpers[parent.pid] = true
			}
		}
	}
	out := make([]int, 0, len(helpers))
	for pid := range helpers {
		out = append(out, pid)
	}
	return out
}

func isHelperParent(p proc, daemonPID int) bool {
	return p.pid != daemonPID && p.pid != 1 && p.pid != os.Getpid()
}

// memory is the resident and proportional set size of processes, in KiB.
type memory struct{ rssKiB, pssKiB int64 }

func memoryOf(pids []int) (memory, error) {
	var m memory
	for _, pid := range pids {
		rss, err := statusField(pid, "VmRSS:")
		if err != nil {
			return m, err
		}
		pss, err := smapsField(pid, "Pss:")
		if err != nil {
			return m, err
		}
		m.rssKiB += rss
		m.pssKiB += pss
	}
	return m, nil
}

func statusField(pid int, key string) (int64, error) {
	return kibField(fmt.Sprintf("/proc/%d/status", pid), key)
}

func smapsField(pid int, key string) (int64, error) {
	return kibField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), key)
}

func kibField(file, key string) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				return strconv.ParseInt(fields[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: no %s", file, key)
}

// pidBySocket finds the process listening on a unix socket path, by the
// socket's inode in /proc/net/unix and the process's open descriptors.
func pidBySocket(sock string) (int, error) {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	inodes := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// Num RefCount Protocol Flags Type St Inode Path; flag 00010000 = listening.
		if len(fields) >= 8 && fields[7] == sock && fields[3] == "00010000" {
			inodes["socket:["+fields[6]+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no process listens on %s", sock)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		if target, err := os.Readlink(fd); err == nil && inodes[target] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process holds the socket %s", sock)
}

package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/sandbox/infra"
)

// InfraArgv0 is the argv[0] under which the daemon binary, re-executed
// from /proc/self/exe, runs as a pod's infra process (see RunInfra).
const InfraArgv0 = infra.Argv0

// infraStartTimeout bounds the wait for the infra process to be ready.
const infraStartTimeout = 10 * time.Second

// InfraBinaryName is the small infra binary (cmd/criserver-infra) the
// daemon prefers when it is installed next to the daemon's own binary.
const InfraBinaryName = "criserver-infra"

// RunInfra is the main of a pod's infra process (see package infra).
func RunInfra() int { return infra.Run() }

// defaultInfraBinary is InfraBinaryName beside the running executable, or
// "" (re-execute ourselves) when there is none.
func defaultInfraBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), InfraBinaryName)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return p
	}
	return ""
}

// startInfra starts the infra process of pod id in a new PID namespace,
// inside the pod's network, IPC and UTS namespaces: it is forked from a
// thread that joined them. exe is the binary to run ("" = /proc/self/exe).
//
// With userns set, it is started instead in new namespaces of the kinds in
// userns.flags, the user namespace first (see createUserNamespaces), so
// that its PID namespace belongs to the pod's user namespace.
func startInfra(exe, id string, ns map[nsKind]string, userns *usernsClone) (int, error) {
	if exe == "" {
		exe = "/proc/self/exe"
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("start infra process: %w", err)
	}
	defer r.Close()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{InfraArgv0, id},
		Env:         []string{},
		Stdout:      w,
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setsid: true},
	}
	if userns != nil {
		// Root of the new user namespace may not reach the binary through
		// the daemon's directories: it executes the file the daemon opened.
		bin, oerr := os.Open(exe)
		if oerr != nil {
			w.Close()
			return 0, fmt.Errorf("start infra process: %w", oerr)
		}
		defer bin.Close()
		cmd.Path, cmd.ExtraFiles = "/proc/self/fd/3", []*os.File{bin}
		userns.apply(cmd.SysProcAttr)
		err = cmd.Start()
	} else {
		err = inNamespaces(ns, cmd.Start)
	}
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("start infra process: %w", err)
	}
	// Reap it when it dies; after a daemon restart init does that instead.
	go func() { _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	if err := r.SetReadDeadline(time.Now().Add(infraStartTimeout)); err != nil {
		return 0, errors.Join(fmt.Errorf("wait for infra process %d: %w", pid, err), stopInfra(pid, id))
	}
	buf := make([]byte, len(infra.Ready))
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != infra.Ready {
		startErr := fmt.Errorf("infra process %d did not start (is %s able to run as %s?): %v", pid, exe, InfraArgv0, err)
		return 0, errors.Join(startErr, stopInfra(pid, id))
	}
	return pid, nil
}

// findInfra returns the pid of the infra process of pod id, or 0: for a pod
// whose record was written before its infra process started.
func findInfra(id string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && infraAlive(pid, id) {
			return pid
		}
	}
	return 0
}

// infraAlive tells whether pid is still the infra process of pod id, and
// not a process that reused its PID.
func infraAlive(pid int, id string) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	return len(args) == 2 && string(args[0]) == InfraArgv0 && string(args[1]) == id
}

// stopInfra kills the infra process of pod id and waits until it is gone,
// so that its PID namespace and cgroup membership end with it.
func stopInfra(pid int, id string) error {
	if !infraAlive(pid, id) {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill infra process %d: %w", pid, err)
	}
	// Wait until it is reaped, not just dead: a zombie still counts as a
	// member of the pod cgroup, which could then not be removed.
	deadline := time.Now().Add(5 * time.Second)
	for infraAlive(pid, id) || isZombieChild(pid) {
		if time.Now().After(deadline) {
			klog.InfoS("Infra process not reaped 5s after SIGKILL", "pod", id, "pid", pid)
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// isZombieChild tells whether pid is a child of this process that has
// exited and is not reaped yet (the reaper goroutine of startInfra will).
// A zombie of another parent, after a daemon restart, is not waited for.
func isZombieChild(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || len(stat) < i+2 {
		return false
	}
	fields := strings.Fields(string(stat[i+1:])) // state, ppid, ...
	return len(fields) > 1 && fields[0] == "Z" && fields[1] == strconv.Itoa(os.Getpid())
}

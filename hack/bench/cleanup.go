package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/criserver/criserver/cgroups"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// cleanupHost removes whatever a daemon left on the host after it stopped:
// processes, mounts (rootfs, netns, shm), its CNI bridge, pod cgroups,
// per-pod NAT chains, and its root and state directories. It returns what
// it had to clean, so that a leak is visible in the run's log.
func cleanupHost(d *daemon, keepState bool) []string {
	var found []string
	found = append(found, killLeftovers(d)...)
	found = append(found, unmountUnder(d.dir)...)
	if d.bridge != "" {
		if err := exec.Command("ip", "link", "show", d.bridge).Run(); err == nil {
			// The bridge plugin never deletes its bridge; it is ours to remove.
			if out, err := exec.Command("ip", "link", "del", d.bridge).CombinedOutput(); err != nil {
				found = append(found, fmt.Sprintf("delete bridge %s: %v: %s", d.bridge, err, out))
			}
		}
	}
	found = append(found, removeCgroups(d.cgroupParent())...)
	if d.network != "" {
		found = append(found, removeMasqLeftovers(d.network)...)
	}
	if d.name == rtContainerd {
		// containerd 1.6 puts shim sockets under /run/containerd/s whatever
		// its state dir; remove the dirs if that left them empty.
		os.Remove("/run/containerd/s")
		os.Remove("/run/containerd")
	}
	if !keepState {
		for _, sub := range []string{"root", "state", "opt"} {
			if err := os.RemoveAll(filepath.Join(d.dir, sub)); err != nil {
				found = append(found, fmt.Sprintf("remove %s: %v", sub, err))
			}
		}
	}
	return found
}

// killLeftovers kills processes still in the daemon's pod cgroups, then
// helpers whose command line names the daemon's directory.
func killLeftovers(d *daemon) []string {
	var found, sockets []string
	self := os.Getpid()
	for pass := 0; pass < 2; pass++ {
		for _, p := range listProcs() {
			if p.pid == self {
				continue
			}
			hit := false
			if pass == 0 {
				for _, cg := range p.cgroups {
					if strings.HasPrefix(cg, d.cgroupParent()+"/") {
						hit = true
					}
				}
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
			if pass == 1 {
				hit = strings.Contains(string(cmdline), d.dir+"/")
			}
			if hit {
				found = append(found, fmt.Sprintf("killed leftover process %d (%s)", p.pid, p.comm))
				if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
					found = append(found, fmt.Sprintf("kill %d: %v", p.pid, err))
				}
				// A killed shim cannot remove its socket.
				if sock := shimSocket(strings.Split(string(cmdline), "\x00")); sock != "" {
					sockets = append(sockets, sock)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, sock := range sockets {
		_ = os.Remove(sock) // gone already if the shim got to it
	}
	return found
}

// shimSocket is where a containerd 1.6 shim with these arguments listens:
// /run/containerd/s/<sha256 of "<containerd address>/<namespace>/<id>">,
// whatever containerd's state dir. "" for any other process.
func shimSocket(argv []string) string {
	if len(argv) == 0 || !strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") {
		return ""
	}
	args := map[string]string{}
	for i := 1; i+1 < len(argv); i++ {
		if strings.HasPrefix(argv[i], "-") {
			args[strings.TrimLeft(argv[i], "-")] = argv[i+1]
		}
	}
	if args["address"] == "" || args["namespace"] == "" || args["id"] == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(filepath.Join(args["address"], args["namespace"], args["id"])))
	return filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:]))
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) []string {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return []string{err.Error()}
	}
	mounts := make([]string, 0, len(infos))
	for _, m := range infos {
		mounts = append(mounts, m.Mountpoint)
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	var found []string
	for _, mp := range mounts {
		found = append(found, "unmounted leftover "+mp)
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			found = append(found, fmt.Sprintf("unmount %s: %v", mp, err))
		}
	}
	return found
}

// removeCgroups removes the cgroup tree parent in every hierarchy, leaves
// first. runc creates the pod level of the tree and leaves it behind.
func removeCgroups(parent string) []string {
	var found []string
	roots, _ := filepath.Glob(filepath.Join(cgroups.Root, "*"))
	for _, root := range roots {
		top := filepath.Join(root, parent)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		// The walk skips what it cannot read; the removals below report it.
		_ = filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, dir := range dirs {
			if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				found = append(found, fmt.Sprintf("remove cgroup %s: %v", dir, err))
			}
		}
	}
	return found
}

// logLeftovers reports what cleanup found, as a warning for each.
func logLeftovers(name string, found []string) {
	for _, f := range found {
		klog.InfoS("Cleanup", "runtime", name, "action", f)
	}
}

package oci

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// passwdEntry is one line of an image's /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

// groupEntry is one line of an image's /etc/group.
type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// resolveUser computes the container's identity. The CRI's run_as_username
// / run_as_user win over the image's User; run_as_group needs one of them.
// Names resolve through the image's /etc/passwd and /etc/group, read with
// securejoin so that a hostile image cannot point us outside its rootfs.
func resolveUser(rootfs, imageUser string, sc *runtime.LinuxContainerSecurityContext) (ResolvedUser, error) {
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return ResolvedUser{}, invalidf("run_as_group %d is specified without run_as_user or run_as_username", sc.GetRunAsGroup().GetValue())
	}
	passwd, err := readPasswd(rootfs)
	if err != nil {
		return ResolvedUser{}, err
	}
	groups, err := readGroups(rootfs)
	if err != nil {
		return ResolvedUser{}, err
	}
	userPart, groupPart := userSpec(imageUser, sc)
	u, userName, err := lookupUser(passwd, userPart)
	if err != nil {
		return ResolvedUser{}, err
	}
	if groupPart != "" {
		if u.GID, err = lookupGroup(groups, groupPart); err != nil {
			return ResolvedUser{}, err
		}
	}
	if u.AdditionalGids, err = supplementalGids(u.GID, userName, groups, sc); err != nil {
		return ResolvedUser{}, err
	}
	return u, nil
}

// userSpec splits the effective "user[:group]": the image's User unless
// the CRI names a user; run_as_group overrides the group.
func userSpec(imageUser string, sc *runtime.LinuxContainerSecurityContext) (userPart, groupPart string) {
	userPart, groupPart, _ = strings.Cut(imageUser, ":")
	switch {
	case sc.GetRunAsUsername() != "":
		userPart, groupPart = sc.GetRunAsUsername(), ""
	case sc.GetRunAsUser() != nil:
		userPart, groupPart = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10), ""
	}
	if sc.GetRunAsGroup() != nil {
		groupPart = strconv.FormatInt(sc.GetRunAsGroup().GetValue(), 10)
	}
	return userPart, groupPart
}

// lookupUser resolves a uid or user name ("" = root); a uid missing from
// /etc/passwd is fine (primary group 0), a missing name is not.
func lookupUser(passwd []passwdEntry, user string) (ResolvedUser, string, error) {
	var e *passwdEntry
	u := ResolvedUser{}
	if id, ok := parseID(user); ok || user == "" {
		u.UID = id
		e = findPasswd(passwd, func(e passwdEntry) bool { return e.uid == id })
	} else if isNumeric(user) {
		return ResolvedUser{}, "", invalidf("user id %q is out of range", user)
	} else if e = findPasswd(passwd, func(e passwdEntry) bool { return e.name == user }); e == nil {
		return ResolvedUser{}, "", invalidf("user %q not found in the image's /etc/passwd", user)
	}
	name := ""
	if e != nil {
		u.UID, u.GID, u.Home, name = e.uid, e.gid, e.home, e.name
	}
	if u.Home == "" {
		u.Home = "/"
	}
	return u, name, nil
}

// lookupGroup resolves a gid or group name through /etc/group.
func lookupGroup(groups []groupEntry, group string) (uint32, error) {
	if id, ok := parseID(group); ok {
		return id, nil
	}
	if isNumeric(group) {
		return 0, invalidf("group id %q is out of range", group)
	}
	g := findGroup(groups, func(g groupEntry) bool { return g.name == group })
	if g == nil {
		return 0, invalidf("group %q not found in the image's /etc/group", group)
	}
	return g.gid, nil
}

// supplementalGids lists the process's groups: the primary group, then
// (policy Merge) the image's groups naming the user, then the CRI's.
func supplementalGids(gid uint32, userName string, groups []groupEntry, sc *runtime.LinuxContainerSecurityContext) ([]uint32, error) {
	gids := []uint32{gid}
	switch p := sc.GetSupplementalGroupsPolicy(); p {
	case runtime.SupplementalGroupsPolicy_Merge:
		for _, g := range groups {
			if userName != "" && contains(g.members, userName) {
				gids = append(gids, g.gid)
			}
		}
	case runtime.SupplementalGroupsPolicy_Strict:
	default:
		return nil, invalidf("unknown supplemental groups policy %v", p)
	}
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > maxID {
			return nil, invalidf("supplemental group %d is out of range", g)
		}
		gids = append(gids, uint32(g))
	}
	return dedupe(gids), nil
}

// maxID is the largest valid uid/gid ((uid_t)-1 is reserved).
const maxID = 1<<32 - 2

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > maxID {
		return 0, false
	}
	return uint32(n), true
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func dedupe(ids []uint32) []uint32 {
	seen := map[uint32]bool{}
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func findPasswd(entries []passwdEntry, match func(passwdEntry) bool) *passwdEntry {
	for i := range entries {
		if match(entries[i]) {
			return &entries[i]
		}
	}
	return nil
}

func findGroup(entries []groupEntry, match func(groupEntry) bool) *groupEntry {
	for i := range entries {
		if match(entries[i]) {
			return &entries[i]
		}
	}
	return nil
}

// maxImageFile bounds how much of an image's /etc/passwd or /etc/group is read.
const maxImageFile = 16 << 20

// readImageFile returns the lines of a file inside rootfs; a missing file
// is no lines (scratch images have no /etc/passwd).
func readImageFile(rootfs, name string) ([]string, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolve %s in rootfs: %w", name, err)
	}
	// Only a regular file is read: a FIFO or device node planted by an
	// image would block or never end.
	if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() {
		return nil, nil
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", name, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(f, maxImageFile))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read image %s: %w", name, err)
	}
	return lines, nil
}

// readPasswd parses name:password:uid:gid:gecos:home:shell lines,
// skipping malformed ones.
func readPasswd(rootfs string) ([]passwdEntry, error) {
	lines, err := readImageFile(rootfs, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	var out []passwdEntry
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) < 4 {
			continue
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			continue
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	}
	return out, nil
}

// readGroups parses name:password:gid:member,member lines.
func readGroups(rootfs string) ([]groupEntry, error) {
	lines, err := readImageFile(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	var out []groupEntry
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) < 3 {
			continue
		}
		gid, ok := parseID(f[2])
		if !ok {
			continue
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.members = append(g.members, m)
				}
			}
		}
		out = append(out, g)
	}
	return out, nil
}

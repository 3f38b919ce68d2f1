package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	log := strings.Join([]string{
		`100 mkdirat(AT_FDCWD</>, "/r/containers/x", 0700) = 0`,
		`101 openat(AT_FDCWD</>, "/r/.x.json.tmp-1", O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0600 <unfinished ...>`,
		`100 openat(AT_FDCWD</>, "/r/x.json", O_RDONLY|O_CLOEXEC) = 3</r/x.json>`,
		`101 <... openat resumed>) = 5</r/.x.json.tmp-1>`,
		`101 renameat(AT_FDCWD</>, "/r/.x.json.tmp-1", AT_FDCWD</>, "/r/x.json") = 0`,
		`100 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, child_tid=0x1}, 88) = 102`,
		`102 openat(5</r/layer>, "diff", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 6</r/layer/diff>`,
		`100 clone(child_stack=NULL, flags=CLONE_VM|CLONE_VFORK|SIGCHLD) = 200`,
		`200 openat(AT_FDCWD</>, "/s/pidfile", O_WRONLY|O_CREAT, 0644) = 3`,
		`200 clone(child_stack=NULL, flags=SIGCHLD) = 201`,
		`201 mkdirat(AT_FDCWD</>, "/s/crun/x", 0700) = 0`,
		`100 mkdirat(AT_FDCWD</>, "/r/exists", 0700) = -1 EEXIST (File exists)`,
		`100 unlinkat(AT_FDCWD</>, "/r/containers/x", AT_REMOVEDIR) = 0`,
	}, "\n")
	events, err := parse(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := []event{
		{"mkdir", "/r/containers/x"},
		{"create", "/r/.x.json.tmp-1"},
		{"rename", "/r/.x.json.tmp-1 -> /r/x.json"},
		{"create", "/r/layer/diff"},
		{"rmdir", "/r/containers/x"},
	}
	if !slices.Equal(events, want) {
		t.Errorf("parse =\n%v\nwant\n%v", events, want)
	}
}

func TestFold(t *testing.T) {
	pod := strings.Repeat("ab", 32)
	ctr := strings.Repeat("cd", 32)
	f := folder{root: "/r", state: "/s", pods: map[string]bool{pod: true}}
	for _, tt := range []struct{ in, want string }{
		{"/r/pods/." + pod + ".json.tmp-123", "<root>/pods/.<pod>.json.tmp-*"},
		{"/sys/fs/cgroup/cpu/criserver/pod" + pod + "/cgroup.procs", "/sys/fs/cgroup/cpu/criserver/pod<pod>/cgroup.procs"},
		{"/r/overlay2/tmp-rootfs-42/diff", "<root>/overlay2/tmp-*/diff"},
		{"/r/overlay2/tmp-del-" + ctr + "-17", "<root>/overlay2/tmp-*"},
		{"/s/containers/" + ctr + "/config.json", "<state>/containers/<id>/config.json"},
		{"/s/sockets/" + strings.Repeat("e", 60), "<state>/sockets/<hash>"},
		{"/s/pods/" + pod + "/hostname.tmp", "<state>/pods/<pod>/hostname.tmp"},
	} {
		if got := f.fold(tt.in); got != tt.want {
			t.Errorf("fold(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

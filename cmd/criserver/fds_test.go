package main

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMarkInheritedFDsCloseOnExec(t *testing.T) {
	// Opened without O_CLOEXEC, as a launcher's descriptor arrives.
	fd, err := unix.Open(filepath.Join(t.TempDir(), "lock"), unix.O_CREAT|unix.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC != 0 {
		t.Fatal("the test descriptor is close-on-exec already: the test proves nothing")
	}
	if err := markInheritedFDsCloseOnExec(); err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("descriptor %d flags %#x (%v): not close-on-exec", fd, flags, err)
	}
	for std := 0; std < 3; std++ {
		if flags, err := unix.FcntlInt(uintptr(std), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC != 0 {
			t.Errorf("standard descriptor %d was made close-on-exec", std)
		}
	}
}

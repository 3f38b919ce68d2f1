package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// WatchExits calls fn with the container ID each time conmon writes an
// exit file, until ctx ends. conmon writes the file to a temp name and
// renames it, so a rename into the directory (or a close after write)
// means the code is complete. Exit files that already exist are not
// reported: callers read them when they load their state. Each exit also
// wakes the Stop waiting for it (waitExit).
func (r *Runtime) WatchExits(ctx context.Context, fn func(id string)) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify init: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, r.ExitDir(), unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return fmt.Errorf("watch %s: %w", r.ExitDir(), err)
	}
	// A non-blocking fd wrapped by os.NewFile uses the runtime poller, so
	// Close from another goroutine ends a pending Read.
	f := os.NewFile(uintptr(fd), "inotify")
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		buf := make([]byte, 64*1024)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if !errors.Is(err, os.ErrClosed) {
					klog.ErrorS(err, "Exit watcher stopped")
				}
				return
			}
			for _, name := range inotifyNames(buf[:n]) {
				// conmon's temp files carry a suffix after a dot.
				if name != "" && !strings.Contains(name, ".") {
					r.exits.wake(name)
					fn(name)
				}
			}
		}
	}()
	return nil
}

// inotifyNames decodes the names of a buffer of inotify events.
func inotifyNames(buf []byte) []string {
	var names []string
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		start := off + unix.SizeofInotifyEvent
		end := start + int(ev.Len)
		if end > len(buf) {
			break
		}
		names = append(names, strings.TrimRight(string(buf[start:end]), "\x00"))
		off = end
	}
	return names
}

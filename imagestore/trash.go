package imagestore

import (
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// trash deletes directories already detached from the store (renamed to a
// tmpPrefix name) in the background. Unmounting a container's overlay
// syncs the filesystem under it, 10-40 ms on a small node, and deleting
// its writable layer can take longer; neither needs to hold up the call
// that removed it. A crash leaves the directories to start-up, which
// unmounts and deletes every tmpPrefix entry (loadLayers).
type trash struct {
	wg sync.WaitGroup
}

// put deletes dirs in the background, unmounting each one's merged
// mount first.
func (t *trash) put(dirs []string) {
	if len(dirs) == 0 {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		start := time.Now()
		if err := removeDirs(dirs); err != nil {
			// Start-up deletes what is left.
			klog.ErrorS(err, "Delete removed directories; the next start retries", "dirs", dirs)
			return
		}
		klog.V(4).InfoS("Deleted removed directories", "dirs", dirs, "took", time.Since(start))
	}()
}

// wait returns once everything put so far is deleted (or failed).
func (t *trash) wait() { t.wg.Wait() }

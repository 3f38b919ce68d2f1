package oci

import "sync"

// exitWaiters wakes the callers waiting for a container's exit as soon as
// the exit watcher sees conmon's exit file, so that a stop does not sleep
// through a poll interval after the container has gone. Polling stays the
// fallback for a runtime whose watcher is not running.
type exitWaiters struct {
	mu   sync.Mutex
	byID map[string][]chan struct{}
}

// add registers a waiter for id. The channel is closed when the exit is
// seen; cancel must be called when the waiter stops waiting.
func (w *exitWaiters) add(id string) (ch <-chan struct{}, cancel func()) {
	c := make(chan struct{})
	w.mu.Lock()
	if w.byID == nil {
		w.byID = make(map[string][]chan struct{})
	}
	w.byID[id] = append(w.byID[id], c)
	w.mu.Unlock()
	return c, func() { w.remove(id, c) }
}

func (w *exitWaiters) remove(id string, c chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.byID[id]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.byID, id)
	} else {
		w.byID[id] = list
	}
}

// wake closes the channels of every waiter of id.
func (w *exitWaiters) wake(id string) {
	w.mu.Lock()
	list := w.byID[id]
	delete(w.byID, id)
	w.mu.Unlock()
	for _, c := range list {
		close(c)
	}
}

package oci

import "testing"

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestExitWaiters(t *testing.T) {
	var w exitWaiters
	a1, cancelA1 := w.add("a")
	a2, cancelA2 := w.add("a")
	b, cancelB := w.add("b")
	cancelA2()

	w.wake("a")
	if !closed(a1) {
		t.Error("waiter of a not woken by a's exit")
	}
	if closed(a2) {
		t.Error("cancelled waiter of a was woken")
	}
	if closed(b) {
		t.Error("waiter of b woken by a's exit")
	}
	// Cancelling after the wake, as waitExit's defer does, is harmless.
	cancelA1()
	w.wake("a")

	cancelB()
	w.wake("b")
	if closed(b) {
		t.Error("cancelled waiter of b was woken")
	}
	if len(w.byID) != 0 {
		t.Errorf("waiters left: %v", w.byID)
	}
}

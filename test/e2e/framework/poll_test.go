package framework

import (
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Poll of a condition that holds on the third check: n=%d", n)
	}
	start := time.Now()
	if Poll(120*time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a condition that never holds reported true")
	}
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Errorf("Poll gave up after %v, before its deadline", d)
	}
}

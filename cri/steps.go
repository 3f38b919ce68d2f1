package cri

import (
	"time"

	"k8s.io/klog/v2"
)

// stepClock logs, at -v=4, how long each step of one container call took,
// as the pod sandbox steps are logged, so that a slow call can be split
// from the daemon's log without a profiler.
type stepClock struct {
	call, id string
	last     time.Time
	on       bool
}

func newStepClock(call, id string) *stepClock {
	return &stepClock{call: call, id: id, last: time.Now(), on: klog.V(4).Enabled()}
}

// done logs the time since the previous step (or the clock's start).
func (c *stepClock) done(step string) {
	if !c.on {
		return
	}
	now := time.Now()
	klog.V(4).InfoS("Container step done", "call", c.call, "containerID", c.id, "step", step, "took", now.Sub(c.last))
	c.last = now
}

package framework

import "time"

// pollInterval is how often Poll checks its condition.
const pollInterval = 50 * time.Millisecond

// Poll checks cond until it holds or within has passed, and reports
// whether it held. Tests wait on what they can observe through it instead
// of sleeping a fixed time or writing their own deadline loop.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
	return true
}

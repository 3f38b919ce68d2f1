package fault

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
)

// plan decides at which crash points to crash.
type plan struct {
	points map[string]bool

	mu      sync.Mutex
	rng     *rand.Rand // nil unless random
	percent uint64
}

// parsePlan reads the value of CRISERVER_FAULT_CRASH.
func parsePlan(v string) (*plan, error) {
	p := &plan{points: map[string]bool{}}
	if v == "" {
		return p, nil
	}
	if rest, ok := strings.CutPrefix(v, "random:"); ok {
		seedStr, pctStr, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("%q: want random:<seed>:<percent>", v)
		}
		seed, err := strconv.ParseUint(seedStr, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: seed: %w", v, err)
		}
		pct, err := strconv.ParseUint(pctStr, 10, 64)
		if err != nil || pct > 100 {
			return nil, fmt.Errorf("%q: percent must be 0..100", v)
		}
		p.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		p.percent = pct
		return p, nil
	}
	for _, name := range strings.Split(v, ",") {
		if name = strings.TrimSpace(name); name != "" {
			p.points[name] = true
		}
	}
	return p, nil
}

// hit tells whether to crash at point.
func (p *plan) hit(point string) bool {
	if p.points[point] {
		return true
	}
	if p.rng == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Uint64N(100) < p.percent
}

package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Figures of the floor: what the programs a pod start runs cost by
// themselves, so that the runtime's own share can be told from theirs.
const (
	figFloor          = "floor: the external programs' time in a pod start (CNI ADD, conmon + runtime create, runtime start)"
	figWholeOverFloor = "whole pod start ÷ floor"
	unitTimes         = "×"
)

// floorSteps are criserver's step log entries (at -v=4) that time an
// external program from the daemon's side: the CNI plugins, conmon with
// the runtime's create, the runtime's start.
var floorSteps = map[string]bool{"network": true, "conmon and runtime create": true, "runtime start": true}

// cyclePod names one recorded cycle's pod and container.
type cyclePod struct{ pod, ctr string }

var stepLine = regexp.MustCompile(`step done" (?:call="[^"]*" )?(?:pod|containerID)="([0-9a-f]+)" step="([^"]+)" took="([^"]+)"`)

// floor adds, for each recorded cycle of criserver, the time its step log
// gives the external programs of that pod start, and the ratio of the
// whole pod start's median to the floor's. containerd logs no such times.
func (w *workload) floor(d *daemon, pods []cyclePod) {
	w.res.declare(figFloor, unitMs)
	w.res.declare(figWholeOverFloor, unitTimes)
	if d.name != rtCriserver {
		why := "the daemon does not log the time of the programs it runs"
		w.res.na(figFloor, unitMs, d.name, why)
		w.res.na(figWholeOverFloor, unitTimes, d.name, why)
		return
	}
	took, err := readSteps(filepath.Join(d.dir, "criserver.log"))
	if err == nil && len(took) == 0 {
		err = fmt.Errorf("no step times in the daemon's log; it must run at -v=4")
	}
	if err != nil {
		w.res.fail(figFloor, unitMs, d.name, err)
		w.res.fail(figWholeOverFloor, unitTimes, d.name, err)
		return
	}
	var floors []float64
	for _, p := range pods {
		var sum time.Duration
		for _, id := range []string{p.pod, p.ctr} {
			sum += took[id]
		}
		floors = append(floors, ms(sum))
		w.res.add(figFloor, unitMs, d.name, ms(sum))
	}
	if whole := w.res.values(figWholePod, d.name); len(whole) > 0 && len(floors) > 0 {
		w.res.add(figWholeOverFloor, unitTimes, d.name, percentile(whole, 50)/percentile(floors, 50))
	}
}

// readSteps sums, per pod or container ID, the floor steps in a log.
func readSteps(path string) (map[string]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	took := map[string]time.Duration{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := stepLine.FindStringSubmatch(sc.Text())
		if len(m) < 4 || !floorSteps[m[2]] {
			continue
		}
		d, err := time.ParseDuration(m[3])
		if err != nil {
			return nil, fmt.Errorf("%s: step time %q: %w", path, m[3], err)
		}
		took[m[1]] += d
	}
	return took, sc.Err()
}

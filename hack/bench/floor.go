package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Figures of the floor: what the programs a pod start (and a pod stop)
// runs cost by themselves, as the daemon timed each, so that the runtime's
// own share can be told from theirs, and which program holds the rest.
const (
	figFloor            = "floor: the external programs' time in a pod start (CNI ADD, conmon + runtime create, runtime start)"
	figWholeOverFloor   = "whole pod start ÷ floor"
	figStopFloor        = "floor: the CNI plugins' DEL in StopPodSandbox"
	figStopPodOverFloor = "StopPodSandbox+RemovePodSandbox ÷ its floor"
	unitTimes           = "×"
)

// Steps of criserver's step log (at -v=4) that time an external program
// from the daemon's side.
const (
	stepCNIAdd = "network"
	stepCreate = "conmon and runtime create"
	stepStart  = "runtime start"
	stepCNIDel = "network teardown"
)

// startFloorParts are the pod start's programs, each a figure of its own.
var startFloorParts = []struct{ step, figure string }{
	{stepCNIAdd, "floor part: CNI plugins' ADD"},
	{stepCreate, "floor part: conmon + runtime create"},
	{stepStart, "floor part: runtime start"},
}

// cyclePod names one recorded cycle's pod and container.
type cyclePod struct{ pod, ctr string }

var stepLine = regexp.MustCompile(`step done" (?:call="[^"]*" )?(?:pod|containerID)="([0-9a-f]+)" step="([^"]+)" took="([^"]+)"`)

// floor adds, for each recorded cycle of criserver, the time its step log
// gives the external programs of that pod's start (in all and each) and
// stop, and the ratios of the medians of the calls to their floors'.
// containerd logs no such times.
func (w *workload) floor(d *daemon, pods []cyclePod) {
	msFigs := []string{figFloor, figStopFloor}
	for _, p := range startFloorParts {
		msFigs = append(msFigs, p.figure)
	}
	ratioFigs := []string{figWholeOverFloor, figStopPodOverFloor}
	each := func(fn func(name, unit string)) {
		for _, f := range msFigs {
			fn(f, unitMs)
		}
		for _, f := range ratioFigs {
			fn(f, unitTimes)
		}
	}
	each(func(name, unit string) { w.res.declare(name, unit) })
	if d.name != rtCriserver {
		each(func(name, unit string) {
			w.res.na(name, unit, d.name, "the daemon does not log the time of the programs it runs")
		})
		return
	}
	took, err := readSteps(filepath.Join(d.dir, "criserver.log"))
	if err == nil && len(took) == 0 {
		err = fmt.Errorf("no step times in the daemon's log; it must run at -v=4")
	}
	if err != nil {
		each(func(name, unit string) { w.res.fail(name, unit, d.name, err) })
		return
	}
	for _, p := range pods {
		pod, ctr := took[p.pod], took[p.ctr]
		w.res.add(figFloor, unitMs, d.name, ms(pod[stepCNIAdd]+ctr[stepCreate]+ctr[stepStart]))
		for _, part := range startFloorParts {
			w.res.add(part.figure, unitMs, d.name, ms(pod[part.step]+ctr[part.step]))
		}
		w.res.add(figStopFloor, unitMs, d.name, ms(pod[stepCNIDel]))
	}
	w.addRatio(figWholeOverFloor, figWholePod, figFloor, d.name)
	w.addRatio(figStopPodOverFloor, figStopRemovePod, figStopFloor, d.name)
}

// addRatio adds the ratio of two figures' medians, when both have values.
func (w *workload) addRatio(name, num, den, rt string) {
	n, m := w.res.values(num, rt), w.res.values(den, rt)
	if len(n) > 0 && len(m) > 0 {
		w.res.add(name, unitTimes, rt, percentile(n, 50)/percentile(m, 50))
	}
}

// readSteps reads the step times of a log by pod or container ID and step.
func readSteps(path string) (map[string]map[string]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	took := map[string]map[string]time.Duration{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := stepLine.FindStringSubmatch(sc.Text())
		if len(m) < 4 {
			continue
		}
		d, err := time.ParseDuration(m[3])
		if err != nil {
			return nil, fmt.Errorf("%s: step time %q: %w", path, m[3], err)
		}
		if took[m[1]] == nil {
			took[m[1]] = map[string]time.Duration{}
		}
		took[m[1]][m[2]] += d
	}
	return took, sc.Err()
}

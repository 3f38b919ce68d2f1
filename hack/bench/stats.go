package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Runtime names, in the order the tables show them; the ratio is the
// first's median divided by the second's.
const (
	rtCriserver  = "criserver"
	rtContainerd = "containerd"
)

// series is one runtime's samples of one figure.
type series struct {
	Samples []float64 `json:"samples,omitempty"`
	Median  *float64  `json:"median,omitempty"`
	P99     *float64  `json:"p99,omitempty"`
	// NA says why there is no figure: the runtime answered Unimplemented,
	// or a step this figure needs could not run.
	NA string `json:"na,omitempty"`
	// Errors counts failed attempts; FirstError is the first of them.
	Errors     int    `json:"errors,omitempty"`
	FirstError string `json:"first_error,omitempty"`
}

// figure is one measured quantity for every runtime.
type figure struct {
	Name     string             `json:"name"`
	Unit     string             `json:"unit"`
	Runtimes map[string]*series `json:"runtimes"`
	// Ratio is criserver's median ÷ containerd's, when both have one.
	Ratio *float64 `json:"ratio_median,omitempty"`
}

// results collects figures in the order they were first recorded.
type results struct {
	mu      sync.Mutex
	figures []*figure
	notes   []string // set-up problems that explain n/a or failed figures
}

// note records a set-up problem of one runtime.
func (r *results) note(rt, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, rt+": "+msg)
}

func (r *results) series(name, unit, rt string) *series {
	for _, f := range r.figures {
		if f.Name == name {
			if f.Runtimes[rt] == nil {
				f.Runtimes[rt] = &series{}
			}
			return f.Runtimes[rt]
		}
	}
	f := &figure{Name: name, Unit: unit, Runtimes: map[string]*series{rt: {}}}
	r.figures = append(r.figures, f)
	return f.Runtimes[rt]
}

// declare fixes a figure's place in the table before any sample arrives.
func (r *results) declare(name, unit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.figures {
		if f.Name == name {
			return
		}
	}
	r.figures = append(r.figures, &figure{Name: name, Unit: unit, Runtimes: map[string]*series{}})
}

// add records one sample.
func (r *results) add(name, unit, rt string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series(name, unit, rt)
	s.Samples = append(s.Samples, v)
}

// values returns a copy of rt's samples of a figure so far.
func (r *results) values(name, rt string) []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.figures {
		if s := f.Runtimes[rt]; f.Name == name && s != nil {
			return append([]float64(nil), s.Samples...)
		}
	}
	return nil
}

// fail records a failed attempt. Unimplemented makes the figure n/a for
// that runtime rather than an error: the feature is not there yet.
func (r *results) fail(name, unit, rt string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series(name, unit, rt)
	var na errNA
	switch {
	case errors.As(err, &na):
		if s.NA == "" {
			s.NA = na.why
		}
		return
	case isUnimplemented(err):
		if s.NA == "" {
			s.NA = "Unimplemented: " + errMessage(err)
		}
		return
	}
	s.Errors++
	if s.FirstError == "" {
		s.FirstError = err.Error()
	}
}

// na marks a figure as not measurable for rt, with the reason.
func (r *results) na(name, unit, rt, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series(name, unit, rt)
	if s.NA == "" {
		s.NA = why
	}
}

// finish computes medians, p99s and ratios.
func (r *results) finish() []*figure {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.figures {
		for _, s := range f.Runtimes {
			if len(s.Samples) > 0 {
				m, p := percentile(s.Samples, 50), percentile(s.Samples, 99)
				s.Median, s.P99 = &m, &p
			}
		}
		a, b := f.Runtimes[rtCriserver], f.Runtimes[rtContainerd]
		if a != nil && b != nil && a.Median != nil && b.Median != nil && *b.Median > 0 {
			ratio := *a.Median / *b.Median
			f.Ratio = &ratio
		}
	}
	return r.figures
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of samples.
func percentile(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

func isUnimplemented(err error) bool {
	var unimpl interface{ GRPCStatus() *status.Status }
	if errors.As(err, &unimpl) {
		return unimpl.GRPCStatus().Code() == codes.Unimplemented
	}
	return status.Code(err) == codes.Unimplemented
}

func errMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

// errNA is a step that could not run because an earlier one was not
// available; the figure becomes n/a with this reason.
type errNA struct{ why string }

func (e errNA) Error() string { return e.why }

func naf(format string, args ...any) error { return errNA{fmt.Sprintf(format, args...)} }

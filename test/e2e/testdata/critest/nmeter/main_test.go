package main

import (
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	now := time.Date(2026, 12, 5, 7, 8, 9, 123456789, time.UTC)
	for _, tc := range []struct {
		format, want string
		bad          bool
	}{
		{format: "%3t", want: "07:08:09.123"},
		{format: "%t", want: "07:08:09"},
		{format: "at %1t, 100%%", want: "at 07:08:09.1, 100%"},
		{format: "%9t", want: "07:08:09.123456"},
		{format: "%c", bad: true},
		{format: "%3", bad: true},
	} {
		got, err := render(tc.format, now)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("render(%q) = %q, %v; want %q (error %v)", tc.format, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		delay time.Duration
		bad   bool
	}{
		{args: []string{"-d0", "%3t"}, delay: 0},
		{args: []string{"-d", "250", "%t"}, delay: 250 * time.Millisecond},
		{args: []string{"%t"}, delay: time.Second},
		{args: []string{"-dx", "%t"}, bad: true},
		{args: []string{"-d0"}, bad: true},
	} {
		d, _, err := parseArgs(tc.args)
		if tc.bad != (err != nil) || (!tc.bad && d != tc.delay) {
			t.Errorf("parseArgs(%q) = %v, %v; want %v (error %v)", tc.args, d, err, tc.delay, tc.bad)
		}
	}
}

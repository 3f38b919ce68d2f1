// Command nmeter stands in for busybox's nmeter applet, which Debian's
// busybox build leaves out and the node e2e suite's container lifecycle
// specs use to print the time of day with milliseconds
// (`nmeter -d0 '%3t' | head -n1`). It knows only what they use: -d MSEC
// and, in the format, %t or %Nt (hh:mm:ss with N decimals) and %%; any
// other directive is refused, so that a spec needing more fails clearly.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	delay, format, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "nmeter:", err)
		os.Exit(1)
	}
	if _, err := render(format, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, "nmeter:", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for {
		line, _ := render(format, time.Now())
		w.WriteString(line + "\n")
		// A write to a closed pipe (head -n1 has exited) ends the program.
		if err := w.Flush(); err != nil {
			os.Exit(0)
		}
		if delay > 0 {
			time.Sleep(delay)
		}
	}
}

// parseArgs reads [-d MSEC] FORMAT (and -dMSEC, as busybox accepts).
func parseArgs(args []string) (time.Duration, string, error) {
	delay := time.Second
	for len(args) > 0 && strings.HasPrefix(args[0], "-d") {
		v := strings.TrimPrefix(args[0], "-d")
		args = args[1:]
		if v == "" {
			if len(args) == 0 {
				return 0, "", errors.New("-d needs a value")
			}
			v, args = args[0], args[1:]
		}
		ms, err := strconv.Atoi(v)
		if err != nil {
			return 0, "", fmt.Errorf("-d %q: not a number of milliseconds", v)
		}
		delay = time.Duration(ms) * time.Millisecond
	}
	if len(args) != 1 {
		return 0, "", errors.New("usage: nmeter [-d MSEC] FORMAT")
	}
	return delay, args[0], nil
}

// render expands the format for time now.
func render(format string, now time.Time) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		j := i + 1
		for j < len(format) && format[j] >= '0' && format[j] <= '9' {
			j++
		}
		if j == len(format) {
			return "", fmt.Errorf("format %q ends inside a directive", format)
		}
		switch {
		case format[j] == '%' && j == i+1:
			b.WriteByte('%')
		case format[j] == 't':
			prec := 0
			if j > i+1 {
				prec, _ = strconv.Atoi(format[i+1 : j])
			}
			if prec > 6 {
				prec = 6
			}
			b.WriteString(now.Format("15:04:05"))
			if prec > 0 {
				frac := now.Nanosecond() / pow10(9-prec)
				fmt.Fprintf(&b, ".%0*d", prec, frac)
			}
		default:
			return "", fmt.Errorf("directive %q is not supported by this stand-in", format[i:j+1])
		}
		i = j
	}
	return b.String(), nil
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

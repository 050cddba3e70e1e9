// Package measure reads what the bench/ commands measure of a process
// from /proc (Linux), and the median of a sample.
package measure

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// CPU returns pid's CPU time in seconds: utime+stime, plus the CPU time
// of its children that it has waited for (cutime+cstime, fields 16-17 of
// /proc/<pid>/stat) when children is set. 0 when pid is gone.
func CPU(pid int, children bool) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after "pid (comm) ": comm may hold spaces and parentheses.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	idx := []int{11, 12} // utime, stime (fields 14 and 15)
	if children {
		idx = append(idx, 13, 14)
	}
	var ticks float64
	for _, i := range idx {
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / 100 // USER_HZ
}

// Status returns the fields of /proc/<pid>/status, values with their
// whitespace collapsed ("VmRSS" → "18804 kB").
func Status(pid int) map[string]string {
	out := map[string]string{}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

// Median is the median of v (the upper one of an even count); v is not
// modified.
func Median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

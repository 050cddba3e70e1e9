//go:build linux

package health

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// process is what Inspect needs to know of a pid.
type process struct {
	exists, zombie bool
	// started is when the process started (at most 1 s early: the boot
	// time has whole seconds); zero when unknown.
	started time.Time
}

// parseStat parses a /proc/<pid>/stat line, "pid (comm) state ppid …"
// (comm may hold spaces, parentheses and newlines: the fields are counted
// from the last ')'): whether it is a process at all, whether a zombie,
// and its starttime in clock ticks (ok false when unreadable).
func parseStat(b []byte) (p process, ticks uint64, ok bool) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return process{}, 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, so field n is f[n-3]
	if len(f) < 20 || len(f[0]) != 1 {
		return process{}, 0, false
	}
	p = process{exists: true, zombie: f[0] == "Z"}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	return p, ticks, err == nil
}

// readProcess reads root/<pid>/stat: whether the process exists, is a
// zombie (state Z), and when it started (field 22, starttime, in clock
// ticks after boot, with the boot time from root/stat's btime). The same
// reading as healthbridge's internal/proc; kept here so that this package
// needs nothing outside the standard library.
func readProcess(root string, pid int) (process, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return process{}, nil // no such process
	}
	p, ticks, ok := parseStat(b)
	if !ok {
		return p, nil
	}
	stat, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return p, nil
	}
	for _, line := range strings.Split(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				// /proc's clock ticks are USER_HZ, 100 on every architecture.
				p.started = time.Unix(boot, 0).Add(time.Duration(ticks) * (time.Second / 100))
			}
		}
	}
	return p, nil
}

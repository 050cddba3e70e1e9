//go:build !linux

package health

import (
	"errors"
	"time"
)

// process is what Inspect needs to know of a pid.
type process struct {
	exists, zombie bool
	started        time.Time
}

// errNoPidCheck: the pid check reads /proc, which only Linux has.
var errNoPidCheck = errors.New("checking that the pid is a live process needs Linux's /proc: set InspectOptions.SkipPid on this system")

// readProcess is Linux-only; elsewhere Inspect cannot judge the pid and
// says so (an error: the verdict is unknown, never a guess).
func readProcess(string, int) (process, error) { return process{}, errNoPidCheck }

package health

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// InspectOptions adjust Inspect.
type InspectOptions struct {
	// SkipPid skips the "pid is a live process" check, for a reader that
	// does not share the application's PID namespace.
	SkipPid bool
	// MaxAge, when > 0, fails an error file older than this (a heartbeat).
	MaxAge time.Duration
	// Now is the time to judge MaxAge against; zero means time.Now().
	Now time.Time
	// ProcRoot is where /proc is; empty means "/proc".
	ProcRoot string
	// FirstSeen, when not nil, is called with the error file's mtime when
	// that mtime lies in the future, and returns when the reader first saw
	// that mtime (see MtimeTracker): a future mtime (a clock skewed ahead,
	// a file touched 70 years ahead) then counts as "written" once, at
	// that moment, and ages from there. Nil: a future mtime counts as
	// written now, which is right for a reader that looks once.
	FirstSeen func(mtime, now time.Time) time.Time
}

// MtimeTracker remembers when a reader first saw an mtime, so that a state
// file with an mtime in the future is fresh at most once and then ages on
// the monotonic clock. Its FirstSeen method is InspectOptions.FirstSeen.
// It is safe for concurrent use; the zero value is ready.
type MtimeTracker struct {
	mu    sync.Mutex // guards mtime and seen
	mtime time.Time
	seen  time.Time
}

// FirstSeen returns when mtime was first passed in, now if it is new.
func (m *MtimeTracker) FirstSeen(mtime, now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.mtime.Equal(mtime) || m.seen.IsZero() {
		m.mtime, m.seen = mtime, now
	}
	return m.seen
}

// Verdict is what Inspect found.
type Verdict struct {
	// Healthy is true when pid and error say so.
	Healthy bool
	// Reason says why not (or "pid 42, error 0" when healthy).
	Reason string
	// Pid and Code are the values read, when they could be.
	Pid, Code int
}

// Inspect reads the unit at dir (<rundir>/<unit>) and judges it, as the
// liveness tool's shell checker with three checks, stricter about edge cases:
//
//   - pid must hold one decimal number and a newline (missing: "not
//     started"; empty, garbage or no newline, i.e. half-written: unhealthy);
//   - that pid must be a running process, not a zombie, that started
//     before the pid file was written: a later one is an unrelated process
//     that was given the writer's pid after it exited (unless SkipPid);
//   - error must hold 0 and a newline (missing: "no state set yet");
//     another number is unhealthy with that code;
//   - with MaxAge, error must have been written within MaxAge; an mtime in
//     the future counts as written when first seen (InspectOptions.FirstSeen).
//
// The error return is for a unit that cannot be read at all (permission
// denied, an I/O error): the verdict is then unknown, not unhealthy.
func Inspect(dir string, o InspectOptions) (Verdict, error) {
	pid, err := readNumber(filepath.Join(dir, PidFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Verdict{Reason: fmt.Sprintf("not started: %s does not exist", filepath.Join(dir, PidFile))}, nil
	case isFormat(err):
		return Verdict{Reason: "pid file " + err.Error()}, nil
	case err != nil:
		return Verdict{}, err
	}
	v := Verdict{Pid: pid}
	if pid <= 0 {
		v.Reason = fmt.Sprintf("pid file holds %d, not a process id", pid)
		return v, nil
	}
	if !o.SkipPid {
		root := o.ProcRoot
		if root == "" {
			root = "/proc"
		}
		p, err := readProcess(root, pid)
		if err != nil {
			return Verdict{}, err
		}
		if !p.exists {
			v.Reason = fmt.Sprintf("process %d is not running", pid)
			return v, nil
		}
		if p.zombie {
			v.Reason = fmt.Sprintf("process %d is a zombie (exited, not yet reaped)", pid)
			return v, nil
		}
		// A process that started after the pid file was last written
		// cannot be its writer: the writer exited and its pid was reused.
		if fi, err := os.Stat(filepath.Join(dir, PidFile)); err == nil {
			if started := p.started; !started.IsZero() && started.After(fi.ModTime().Add(pidReuseSlack)) {
				v.Reason = fmt.Sprintf("process %d started at %s, after the pid file was written at %s: it is not the writer (pid reused)",
					pid, started.UTC().Format(time.RFC3339), fi.ModTime().UTC().Format(time.RFC3339))
				return v, nil
			}
		}
	}
	errPath := filepath.Join(dir, ErrorFile)
	code, err := readNumber(errPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.Reason = fmt.Sprintf("no state set yet: %s does not exist (the application has not called set)", errPath)
		return v, nil
	case isFormat(err):
		v.Reason = "error file " + err.Error()
		return v, nil
	case err != nil:
		return Verdict{}, err
	}
	v.Code = code
	if code != 0 {
		v.Reason = fmt.Sprintf("unhealthy: error code %d", code)
		return v, nil
	}
	if o.MaxAge > 0 {
		st, err := os.Stat(errPath)
		if err != nil {
			return Verdict{}, err
		}
		now := o.Now
		if now.IsZero() {
			now = time.Now()
		}
		written := st.ModTime()
		if written.After(now) {
			written = now
			if o.FirstSeen != nil {
				written = o.FirstSeen(st.ModTime(), now)
			}
		}
		if age := now.Sub(written); age > o.MaxAge {
			v.Reason = fmt.Sprintf("stale: state last written %v ago, more than maxAge %v", age.Round(time.Second), o.MaxAge)
			return v, nil
		}
	}
	v.Healthy = true
	v.Reason = fmt.Sprintf("pid %d, error 0", pid)
	return v, nil
}

// pidReuseSlack absorbs clock adjustments between a process's start and
// its writing of the pid file: only a process that started more than this
// after the pid file's mtime is judged a reused pid.
const pidReuseSlack = time.Second

type formatError struct{ msg string }

func (e *formatError) Error() string { return e.msg }

func isFormat(err error) bool {
	var fe *formatError
	return errors.As(err, &fe)
}

// maxFile bounds what is read of a state file.
const maxFile = 64

func readNumber(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return 0, err
	}
	n, s := len(buf), string(buf)
	switch {
	case n == 0:
		return 0, &formatError{"is empty"}
	case n > maxFile:
		return 0, &formatError{fmt.Sprintf("is longer than %d bytes: not a number", maxFile)}
	case !strings.HasSuffix(s, "\n"):
		return 0, &formatError{fmt.Sprintf("holds %q without a final newline: half-written?", s)}
	}
	v, err := strconv.Atoi(strings.TrimSuffix(s, "\n"))
	if err != nil {
		return 0, &formatError{fmt.Sprintf("holds %q, not a number", strings.TrimSuffix(s, "\n"))}
	}
	return v, nil
}

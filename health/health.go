// Package health lets an application publish its own health through the
// run-dir protocol (docs/rundir.md), for healthbridge's rundir check, the
// shell checker clients/sh/rundir-check.sh, or `healthbridge probe rundir`.
//
// The protocol comes from the "liveness" tool: an
// application keeps two files in <rundir>/<unit>/:
//
//	pid     its process id, written by Load once start-up checks pass
//	error   its current error code, written by Set: 0 is healthy
//
// and Reset removes both at shutdown, back to "not started". Every write is
// atomic (a temporary file renamed into place), so a reader never sees half
// a file.
//
// The three package-level functions mirror the liveness tool's Python API; a Unit
// gives the same operations for a rundir and unit of your choosing.
package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// File names inside <rundir>/<unit>/.
const (
	PidFile   = "pid"
	ErrorFile = "error"
)

// EnvRunDir overrides the default run directory when set.
const EnvRunDir = "HEALTHBRIDGE_RUNDIR"

// DefaultRunDir is $HEALTHBRIDGE_RUNDIR if set, else /run/<HOSTNAME> as the
// liveness tool (HOSTNAME from the environment, else the kernel's host name). In a
// Kubernetes pod every container has the same HOSTNAME, the pod's name, so a
// sidecar finds the same directory on a shared volume mounted at /run/<pod>
// or with HEALTHBRIDGE_RUNDIR set alike in both containers.
func DefaultRunDir() string {
	if d := os.Getenv(EnvRunDir); d != "" {
		return d
	}
	h := os.Getenv("HOSTNAME")
	if h == "" {
		h, _ = os.Hostname()
	}
	return filepath.Join("/run", h)
}

// Check is a start-up sanity check run by Load: a nil error means sane.
type Check func(ctx context.Context) error

// ErrNotLoaded is returned by Set and Reset before a successful Load (or
// after Reset).
var ErrNotLoaded = errors.New("health: not loaded: call Load first")

// Unit is one application's state files, <rundir>/<name>/. It is safe for
// concurrent use.
type Unit struct {
	dir string

	mu     sync.Mutex // guards loaded and serialises writes
	loaded bool
}

// NewUnit returns the unit name under rundir. The name must be a single
// path element (no '/', not "." or "..").
func NewUnit(rundir, name string) (*Unit, error) {
	if err := ValidUnitName(name); err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	if rundir == "" {
		return nil, errors.New("health: empty run directory")
	}
	return &Unit{dir: filepath.Join(rundir, name)}, nil
}

// ValidUnitName returns an error unless name can be a unit: one path
// element, not empty, not "." or "..".
func ValidUnitName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("invalid unit name %q: must be a single path element", name)
	}
	return nil
}

// Dir is the unit's directory, <rundir>/<name>.
func (u *Unit) Dir() string { return u.dir }

// Load runs the start-up checks in order and, if every one returns nil,
// creates the unit's directory and writes this process's pid. The first
// failing check's error is returned and nothing is written (the liveness tool's
// RuntimeException). Call Set(0) when the main routine starts.
func (u *Unit) Load(ctx context.Context, checks ...Check) error {
	for i, c := range checks {
		if err := c(ctx); err != nil {
			return fmt.Errorf("health: start-up check %d failed: %w", i, err)
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := os.MkdirAll(u.dir, 0o755); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	// A fresh start: no error state until Set.
	if err := os.Remove(filepath.Join(u.dir, ErrorFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("health: %w", err)
	}
	if err := writeAtomic(u.dir, PidFile, os.Getpid()); err != nil {
		return err
	}
	u.loaded = true
	return nil
}

// Set records the current error code: 0 is healthy, anything else unhealthy
// with that code. Each call rewrites the file, so calling Set(0)
// periodically is a heartbeat for a check with maxAgeSeconds.
func (u *Unit) Set(code int) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.loaded {
		return ErrNotLoaded
	}
	return writeAtomic(u.dir, ErrorFile, code)
}

// Reset removes the state at shutdown: the unit reads as "not started"
// again. Set fails until the next Load.
func (u *Unit) Reset() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.loaded {
		return ErrNotLoaded
	}
	u.loaded = false
	var errs []error
	for _, f := range []string{ErrorFile, PidFile} {
		if err := os.Remove(filepath.Join(u.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeAtomic writes "<n>\n" to dir/name through a temporary file and a
// rename, so readers see the old or the new content, never a part.
func writeAtomic(dir, name string, n int) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	_, werr := f.WriteString(strconv.Itoa(n) + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o644)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("health: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("health: %w", err)
	}
	return nil
}

var std atomic.Pointer[Unit]

// Load runs the start-up checks and, if all pass, writes this process's pid
// to <DefaultRunDir()>/<unit>/pid. Later calls to the package-level Set and
// Reset act on this unit.
func Load(ctx context.Context, unit string, checks ...Check) error {
	u, err := NewUnit(DefaultRunDir(), unit)
	if err != nil {
		return err
	}
	if err := u.Load(ctx, checks...); err != nil {
		return err
	}
	std.Store(u)
	return nil
}

// Set records the current error code of the unit given to Load (0 healthy).
// It returns ErrNotLoaded before Load.
func Set(code int) error {
	u := std.Load()
	if u == nil {
		return ErrNotLoaded
	}
	return u.Set(code)
}

// Reset removes the state of the unit given to Load, at shutdown.
func Reset() error {
	u := std.Load()
	if u == nil {
		return ErrNotLoaded
	}
	return u.Reset()
}

// Package rundir is the rundir probe: it reads an application's run-dir
// state files (<path>/<unit>/pid and error, docs/rundir.md) with
// health.Inspect. Healthy when the pid is a live process and error holds 0;
// every edge case (missing, empty, garbage, half-written files, a dead or
// zombie pid, a stale state) is a failure with a clear output; a unit that
// cannot be read at all (permission denied) is unknown.
//
// Under `healthbridge run` (probe.Deps.ChildPid set) the pid check is the
// supervised child's: the pid file must name that child or one of its
// descendants, so a state file left by an earlier run of the command (or
// naming a pid the kernel has since given to another process) fails, and
// the check fails while no child runs.
package rundir

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/health"
	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/proc"
)

// Kind is the rundir kind: an application's run-dir state files.
var Kind = probe.Kind{
	Name: "rundir",
	Has:  func(c *config.Check) bool { return c.Rundir != nil },
	Defaults: func(c *config.Check) {
		if c.Rundir.CheckPid == nil {
			t := true
			c.Rundir.CheckPid = &t
		}
	},
	Validate: func(c *config.Check, path string) []error {
		var errs []error
		r := c.Rundir
		if r.Unit == "" {
			errs = append(errs, config.Errorf(path+".rundir.unit", "required"))
		} else if err := health.ValidUnitName(r.Unit); err != nil {
			errs = append(errs, config.Errorf(path+".rundir.unit", "%v", err))
		}
		if r.MaxAgeSeconds < 0 {
			errs = append(errs, config.Errorf(path+".rundir.maxAgeSeconds", "must be >= 0, got %d", r.MaxAgeSeconds))
		}
		return errs
	},
	New: New,
	OneShot: &probe.OneShot{
		Words:   []string{"rundir"},
		Schemes: []string{"rundir"},
		// rundir:///PATH?unit=UNIT: the run directory is the path.
		Target: func(u *url.URL) ([]string, error) {
			if u.Host != "" || u.Path == "" {
				return nil, errors.New("want rundir:///PATH?unit=UNIT (three slashes: the path is absolute)")
			}
			return []string{"rundir", u.Path}, nil
		},
		Usage: "rundir PATH --unit UNIT [--no-pid] [--max-age 30s] [-v]",
		Flags: func(fs *pflag.FlagSet) func(probe.Args) (probe.Prober, string, error) {
			unit := fs.String("unit", "", "the unit name")
			noPid := fs.Bool("no-pid", false, "do not check that the pid is a live process")
			maxAge := fs.Duration("max-age", 0, "fail a state older than this (0: off)")
			return func(a probe.Args) (probe.Prober, string, error) {
				if len(a.Pos) != 2 || *unit == "" {
					return nil, "", errors.New("rundir: want PATH and --unit UNIT")
				}
				u, err := health.NewUnit(a.Pos[1], *unit)
				if err != nil {
					return nil, "", fmt.Errorf("--unit: %w", err)
				}
				return NewDir(u.Dir(), !*noPid, *maxAge), u.Dir(), nil
			}
		},
	},
}

// Prober inspects one unit per Probe call.
type Prober struct {
	dir    string
	opts   health.InspectOptions
	mtimes health.MtimeTracker // a future mtime is fresh once, then ages
	// childPid, when not nil, is the supervised child's pid (0: none
	// runs); the pid file must name it or a descendant.
	childPid func() int
}

// New builds a rundir prober from c.Rundir; path defaults to
// health.DefaultRunDir().
// Under `healthbridge run` (d.ChildPid set) and unless checkPid is false,
// the pid file must name the supervised child or one of its descendants.
func New(c *config.Check, d probe.Deps) (probe.Prober, error) {
	r := c.Rundir
	if r == nil {
		return nil, config.Errorf("rundir", "required")
	}
	path := r.Path
	if path == "" {
		path = health.DefaultRunDir()
	}
	checkPid := r.CheckPid == nil || *r.CheckPid
	p := NewDir(filepath.Join(path, r.Unit), checkPid, time.Duration(r.MaxAgeSeconds)*time.Second)
	if checkPid {
		p.childPid = d.ChildPid
	}
	return p, nil
}

// NewDir builds a prober for the unit directory dir.
func NewDir(dir string, checkPid bool, maxAge time.Duration) *Prober {
	p := &Prober{dir: dir, opts: health.InspectOptions{SkipPid: !checkPid, MaxAge: maxAge}}
	p.opts.FirstSeen = p.mtimes.FirstSeen
	return p
}

// Probe inspects the unit. It does only local file reads and ignores ctx.
func (p *Prober) Probe(context.Context) probe.Result {
	child := 0
	if p.childPid != nil {
		if child = p.childPid(); child <= 0 {
			return probe.Result{Outcome: probe.OutcomeFailure, Output: "the supervised command is not running"}
		}
	}
	v, err := health.Inspect(p.dir, p.opts)
	switch {
	case err != nil:
		return probe.Unknown(err)
	case v.Healthy && child > 0 && !descends(v.Pid, child):
		return probe.Result{Outcome: probe.OutcomeFailure, Output: fmt.Sprintf(
			"pid file holds %d, which is not the supervised command (pid %d) or one of its descendants: a state left by an earlier run?", v.Pid, child)}
	case v.Healthy:
		return probe.Result{Outcome: probe.OutcomeSuccess, Output: v.Reason}
	default:
		return probe.Result{Outcome: probe.OutcomeFailure, Output: v.Reason, ExitCode: v.Code}
	}
}

// maxDepth bounds the walk up the process tree in descends.
const maxDepth = 64

// descends reports whether pid is ancestor or one of its descendants,
// walking parent pids in /proc.
func descends(pid, ancestor int) bool {
	for i := 0; i < maxDepth && pid > 1; i++ {
		if pid == ancestor {
			return true
		}
		_, ppid, ok := proc.ReadStat("/proc/" + strconv.Itoa(pid) + "/stat")
		if !ok {
			return false
		}
		pid = ppid
	}
	return pid == ancestor
}

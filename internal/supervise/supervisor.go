package supervise

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/state"
)

// Sidecar is what the Supervisor drives of the checks and their servers
// (app.Sidecar).
type Sidecar interface {
	// Run probes and serves until ctx is done, then shuts down in order
	// (readiness fails, the shutdown delay, cut short when hurry closes);
	// it returns nil after a clean shutdown or a server's error.
	Run(ctx context.Context, hurry <-chan struct{}) error
	// PauseChecks stops probing and puts every check back to starting.
	PauseChecks(now time.Time)
	// ResumeChecks probes again on a fresh schedule.
	ResumeChecks()
	// Store holds the verdicts; the Supervisor publishes its child there.
	Store() *state.Store
	// ShutdownDelay is shutdownDelaySeconds: how long readiness fails
	// before a child is stopped.
	ShutdownDelay() time.Duration
	// Close releases what a Sidecar that will not Run holds.
	Close() error
}

// Options configure a Supervisor.
type Options struct {
	// Argv is the child's command; Env is added to its environment.
	Argv, Env []string
	// Group forwards signals to the child's whole process group.
	Group bool
	// RestartPolicy is config.RestartNever, RestartOnFailure or
	// RestartAlways (the pod's restartPolicy).
	RestartPolicy string
	// OnFailure is config.LivenessNone, LivenessRestart or LivenessExit:
	// what a failed liveness verdict, or a startup check past its
	// failureThreshold, does.
	OnFailure string
	// Grace is terminationGracePeriodSeconds: SIGTERM, then after Grace
	// SIGKILL to the child's process group.
	Grace time.Duration
	// ChildPid, when not nil, is kept at the running child's pid (0 while
	// none runs).
	ChildPid *atomic.Int64
	// Log receives the supervisor's lines.
	Log *slog.Logger
}

// The restart reasons (state.RestartReasons).
const (
	ReasonExit     = state.ReasonExit
	ReasonLiveness = state.ReasonLiveness
	ReasonStartup  = state.ReasonStartup
)

// phase is what the Supervisor is doing with its child.
type phase int

const (
	// running: the child runs and is probed.
	running phase = iota
	// draining: a restart was decided; the checks are paused (readiness
	// fails) and the child still runs, for shutdownDelaySeconds.
	draining
	// stopping: the child got SIGTERM; it gets SIGKILL when the timer
	// fires (terminationGracePeriodSeconds).
	stopping
	// killed: the child got SIGKILL; only its exit is awaited.
	killed
	// backingOff: the child is down; it starts again when the timer fires
	// (CrashLoopBackOff).
	backingOff
	// down: the child has exited and will not start again; the
	// supervisor waits for the sidecar to finish its shutdown.
	down
)

func (p phase) String() string {
	return [...]string{"running", "draining", "stopping", "killed", "backing off", "down"}[p]
}

// ExitError is the exit code when the child cannot be started again.
const ExitError = 1

// Supervisor is `healthbridge run --config`: an init that acts on health.
// Its states are explicit (running, draining, stopping, killed, backing
// off, down) and one loop handles every event — a signal, the child's
// exit, a failed verdict, a timer, the sidecar's end — so a signal is
// handled in every state, including while a child is being stopped.
//
//   - SIGTERM or SIGINT: healthbridge shuts down in order: the sidecar's
//     shutdown (readiness fails, shutdownDelaySeconds), then the child is
//     stopped (SIGTERM, SIGKILL to its group after the grace). A further
//     SIGTERM or SIGINT cuts the current wait short: the shutdown delay,
//     then the grace (the child's group gets SIGKILL at once). Other
//     signals are forwarded to a running child.
//   - The child exits by itself: restarted when restartPolicy says so
//     (Always; OnFailure after a non-zero exit), else healthbridge ends
//     with its exit code.
//   - The liveness verdict fails, or a startup check fails: with
//     onLivenessFailure restart, the checks pause (readiness fails) for
//     the shutdown delay, the child is stopped and started again; with
//     exit, healthbridge shuts down and exits with
//     config.ExitLivenessFailed.
//
// Restarts wait the kubelet's CrashLoopBackOff (Backoff).
type Supervisor struct {
	opts  Options
	sc    Sidecar
	store *state.Store
	log   *slog.Logger

	phase    phase
	child    *Child
	backoff  Backoff
	restarts map[string]uint64
	lastExit int
	reason   string // the restart being carried out
	exitCode int    // set when healthbridge decides its own exit code, else -1

	terminating bool // a stop signal arrived (or healthbridge decided to exit)
	sidecarDone bool // the sidecar's Run returned

	startup []string // the names of the startup checks

	timer  *time.Timer // the current phase's deadline; nil when none
	cancel context.CancelFunc
	hurry  chan struct{}
	hurryO sync.Once
}

// NewSupervisor returns a supervisor of opts.Argv with the checks of sc.
func NewSupervisor(sc Sidecar, opts Options) *Supervisor {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ChildPid == nil {
		opts.ChildPid = new(atomic.Int64)
	}
	s := &Supervisor{opts: opts, sc: sc, store: sc.Store(), log: opts.Log,
		restarts: map[string]uint64{}, lastExit: -1, exitCode: -1, hurry: make(chan struct{})}
	for c := range s.store.Snapshot().Checks() {
		if c.HasRole(config.RoleStartup) {
			s.startup = append(s.startup, c.Name)
		}
	}
	return s
}

// Run starts the child and supervises it until healthbridge must exit; it
// returns healthbridge's exit code: the child's (128+N for signal N),
// config.ExitLivenessFailed, or ExitError when the child could not be
// (re)started. sig delivers the signals healthbridge receives (Forwarded).
func (s *Supervisor) Run(sig <-chan os.Signal) int {
	child, err := Start(s.opts.Argv, s.opts.Group, s.opts.Env...)
	if err != nil {
		_ = s.sc.Close()
		s.log.Error("cannot start the child", "error", err)
		return ExitError
	}
	s.child = child
	s.log.Info("child started", "pid", child.Pid(), "command", strings.Join(s.opts.Argv, " "))
	s.publish()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.cancel = cancel
	runDone := make(chan error, 1)
	go func() { runDone <- s.sc.Run(ctx, s.hurry) }()
	failed := make(chan string, 1)
	if s.opts.OnFailure != config.LivenessNone {
		go s.watch(ctx, failed)
	}
	defer s.setTimer(-1)

	for {
		var childDone <-chan struct{}
		if s.child != nil && s.phase != backingOff && s.phase != down {
			childDone = s.child.Done()
		}
		var timer <-chan time.Time
		if s.timer != nil {
			timer = s.timer.C
		}
		select {
		case v := <-sig:
			s.onSignal(v.(syscall.Signal))
		case <-childDone:
			s.onChildExit()
		case reason := <-failed:
			s.onFailure(reason)
		case <-timer:
			s.timer = nil
			s.onTimer()
		case err := <-runDone:
			runDone = nil
			s.sidecarDone = true
			if err != nil {
				s.log.Error("sidecar stopped", "error", err)
				s.terminate()
			}
			if s.phase == running || s.phase == draining {
				s.stopChild()
			}
		}
		if s.sidecarDone && (s.phase == down || s.phase == backingOff) {
			if s.exitCode >= 0 {
				return s.exitCode
			}
			return s.lastExit
		}
	}
}

// terminate begins healthbridge's own shutdown (once): the sidecar's
// ordered shutdown; the child is stopped when it has finished.
func (s *Supervisor) terminate() {
	if s.terminating {
		return
	}
	s.terminating = true
	s.cancel()
	switch s.phase {
	case draining: // the sidecar's shutdown delay replaces the drain
		s.phase = running
		s.setTimer(-1)
	case backingOff: // no restart: the child stays down
		s.phase = down
		s.setTimer(-1)
	}
}

// hurryUp cuts the sidecar's shutdown delay short.
func (s *Supervisor) hurryUp() { s.hurryO.Do(func() { close(s.hurry) }) }

func (s *Supervisor) onSignal(v syscall.Signal) {
	if v != syscall.SIGTERM && v != syscall.SIGINT {
		if s.phase != backingOff && s.phase != down {
			_ = s.child.Signal(v)
		}
		return
	}
	if !s.terminating {
		s.log.Info("stopping: readiness fails, then the child is stopped", "signal", v.String(), "phase", s.phase.String())
		s.terminate()
		return
	}
	// A further stop signal cuts the current wait short.
	s.hurryUp()
	if s.phase == stopping {
		s.log.Warn("stopping now: the child's process group gets SIGKILL", "signal", v.String())
		s.kill()
	}
}

func (s *Supervisor) onChildExit() {
	s.lastExit = s.child.Code()
	s.setTimer(-1)
	switch s.phase {
	case stopping, killed:
		s.log.Info("child exited", "code", s.lastExit)
	case draining: // a restart was already decided: it goes on
		s.log.Info("child exited by itself while draining", "code", s.lastExit)
	default:
		s.log.Info("child exited by itself", "code", s.lastExit)
		s.reason = ReasonExit
	}
	again := !s.terminating && (s.reason != ReasonExit ||
		s.opts.RestartPolicy == config.RestartAlways ||
		(s.opts.RestartPolicy == config.RestartOnFailure && s.lastExit != 0))
	if !again {
		s.phase = down
		s.publish()
		if !s.terminating {
			// It will not start again: nothing to drain for.
			s.terminate()
			s.hurryUp()
		}
		return
	}
	if s.reason == ReasonExit {
		s.sc.PauseChecks(time.Now())
	}
	d := s.backoff.Next(time.Since(s.child.Started()))
	s.phase = backingOff
	s.publish()
	s.log.Info("restarting the child", "reason", s.reason, "exit_code", s.lastExit, "backoff", d)
	s.setTimer(d)
}

// onFailure acts on a failed liveness verdict or startup check.
func (s *Supervisor) onFailure(reason string) {
	// A report queued before the checks were reset is stale: judge the
	// current verdict.
	if s.terminating || s.phase != running || s.failing(s.store.Snapshot()) == "" {
		return
	}
	what := "liveness failed"
	if reason == ReasonStartup {
		what = "a startup check failed"
	}
	switch s.opts.OnFailure {
	case config.LivenessRestart:
		s.log.Warn(what+": restarting the child", "reason", reason)
		s.reason = reason
		s.sc.PauseChecks(time.Now()) // readiness fails from now
		s.phase = draining
		s.setTimer(s.sc.ShutdownDelay())
	case config.LivenessExit:
		s.log.Warn(what+": stopping the child and exiting", "reason", reason, "exit_code", config.ExitLivenessFailed)
		s.exitCode = config.ExitLivenessFailed
		s.terminate()
	}
}

func (s *Supervisor) onTimer() {
	switch s.phase {
	case draining:
		s.stopChild()
	case stopping:
		s.log.Warn("the child did not exit within terminationGracePeriodSeconds: its process group gets SIGKILL", "grace", s.opts.Grace)
		s.kill()
	case backingOff:
		child, err := Start(s.opts.Argv, s.opts.Group, s.opts.Env...)
		if err != nil {
			s.log.Error("cannot restart the child", "error", err)
			s.exitCode = ExitError
			s.phase = down
			s.terminate()
			s.hurryUp()
			return
		}
		s.child = child
		s.restarts[s.reason]++
		s.phase = running
		s.publish()
		s.sc.ResumeChecks()
		s.log.Info("child started", "pid", child.Pid(), "restarts", s.restarts[s.reason], "reason", s.reason)
	}
}

// stopChild sends the child SIGTERM and gives it the grace.
func (s *Supervisor) stopChild() {
	_ = s.child.Signal(syscall.SIGTERM)
	s.phase = stopping
	s.setTimer(s.opts.Grace)
}

func (s *Supervisor) kill() {
	_ = s.child.Kill()
	s.phase = killed
	s.setTimer(-1)
}

// setTimer arms the phase's timer for d; d < 0 disarms it.
func (s *Supervisor) setTimer(d time.Duration) {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if d >= 0 {
		s.timer = time.NewTimer(d)
	}
}

// publish shows the child in the store (and in ChildPid).
func (s *Supervisor) publish() {
	pid := 0
	if s.phase != backingOff && s.phase != down {
		select {
		case <-s.child.Done():
		default:
			pid = s.child.Pid()
		}
	}
	r := make(map[string]uint64, len(s.restarts))
	for k, v := range s.restarts {
		r[k] = v
	}
	s.opts.ChildPid.Store(int64(pid))
	s.store.SetChild(&state.ChildState{Pid: pid, Started: s.child.Started(), Restarts: r,
		LastExitCode: s.lastExit, Backoff: s.backoff.Current()})
}

// watch reports, after each publication, a failing verdict (Failing) on
// failed; a report not yet taken is not repeated.
func (s *Supervisor) watch(ctx context.Context, failed chan<- string) {
	for {
		changed := s.store.Changed()
		if reason := s.failing(s.store.Snapshot()); reason != "" {
			select {
			case failed <- reason:
			default:
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// failing reports why snap calls for the child to be restarted:
// ReasonStartup when a startup check is unhealthy (it failed
// failureThreshold times in a row, the kubelet's condition for killing
// the container), ReasonLiveness when the liveness verdict fails, or ""
// when neither.
func (s *Supervisor) failing(snap *state.Snapshot) string {
	for _, name := range s.startup {
		if c, ok := snap.Get(name); ok && c.State.Status == state.StatusUnhealthy {
			return ReasonStartup
		}
	}
	if !snap.Plain(state.ScopeLiveness) {
		return ReasonLiveness
	}
	return ""
}

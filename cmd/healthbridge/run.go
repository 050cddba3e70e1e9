package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/healthbridge/healthbridge/health"
	"github.com/healthbridge/healthbridge/internal/app"
	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/idlegc"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/proc"
	"github.com/healthbridge/healthbridge/internal/state"
	"github.com/healthbridge/healthbridge/internal/supervise"
)

const runUsage = `Usage: healthbridge run [--config FILE] [--signal-group] [flags] -- CMD [ARG]...

Runs CMD as healthbridge's child, as a container's init (tini, dumb-init):
same stdin, stdout, stderr, environment and directory; SIGTERM, SIGINT,
SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH forwarded (to its whole
process group with --signal-group); orphans reaped; healthbridge exits with
the child's exit code, or 128+N when signal N killed it.

With --config, the checks run and are served as usual, and SIGTERM stops in
order: readiness fails, the server answers for shutdownDelaySeconds, then
the child gets SIGTERM and, after terminationGracePeriodSeconds (default
30), its process group SIGKILL. The config's command: is the child when no
CMD follows "--".

Flags:
`

// runChild is `healthbridge run`: healthbridge as init, with or without
// checks. Exit codes: the child's, or 2 for a usage error (nothing
// started), or 1 when the child could not be started.
func runChild(args []string, stdout, stderr io.Writer) int {
	var argv []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, argv = args[:i], args[i+1:]
	}
	var g globalFlags
	fs := newFlagSet("healthbridge run")
	g.register(fs)
	group := fs.Bool("signal-group", false, "forward signals to the child's whole process group (dumb-init's default); the child then leads its own group")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprint(stdout, runUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "healthbridge run: %v (see run --help)\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "healthbridge run: unexpected argument %q: the command goes after \"--\"\n", fs.Arg(0))
		return exitUsage
	}
	log, err := newLogger(g.logFormat, g.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "healthbridge run:", err)
		return exitUsage
	}
	// An init reaps: as PID 1, or as a child subreaper otherwise.
	if _, err := proc.ShouldReap(true); err != nil {
		fmt.Fprintln(stderr, "healthbridge run: cannot become a child subreaper:", err)
		return exitUsage
	}
	if g.config != "" {
		cfg, err := kinds.Load(g.config)
		if err != nil {
			printErrors(stderr, g.config, err)
			return exitUsage
		}
		if len(argv) == 0 {
			argv = cfg.Command
		}
		if g.listen != "" {
			cfg.Listen = g.listen
		}
		if len(argv) == 0 {
			fmt.Fprintln(stderr, "healthbridge run: no command: give it after \"--\" or as command: in the config")
			return exitUsage
		}
		if err := startable(argv); err != nil {
			fmt.Fprintln(stderr, "healthbridge run:", err)
			return exitUsage
		}
		// childPid is the running child's pid, 0 while none runs: a
		// rundir check checks its pid file against it.
		var childPid atomic.Int64
		sc, err := app.Build(cfg, app.Options{Logger: log, Reap: true, Kubeconfig: g.kubecfg,
			ChildPid: func() int { return int(childPid.Load()) }})
		if err != nil {
			printErrors(stderr, "start-up", err)
			return exitUsage
		}
		return superviseWithChecks(sc, cfg, argv, *group, &childPid, stderr, log)
	}
	if len(argv) == 0 {
		fmt.Fprint(stderr, "healthbridge run: no command\n"+runUsage)
		return exitUsage
	}
	if err := startable(argv); err != nil {
		fmt.Fprintln(stderr, "healthbridge run:", err)
		return exitUsage
	}
	return supervisePlain(argv, *group, stderr, log)
}

// supervisePlain is init without checks: forward signals, reap, exit as
// the child did.
func supervisePlain(argv []string, group bool, stderr io.Writer, log *slog.Logger) int {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, supervise.Forwarded...)
	defer signal.Stop(sig)
	child, err := supervise.Start(argv, group)
	if err != nil {
		fmt.Fprintln(stderr, "healthbridge run:", err)
		return exitError
	}
	ctx, stopReap := context.WithCancel(context.Background())
	defer stopReap()
	go proc.Reap(ctx, log)
	go idlegc.Run(ctx, log)
	for {
		select {
		case s := <-sig:
			_ = child.Signal(s.(syscall.Signal))
		case <-child.Done():
			return child.Code()
		}
	}
}

// superviseWithChecks is init with checks, acting on health.
//
// SIGTERM or SIGINT: the sidecar shuts down in order (readiness fails, the
// shutdown delay), then the child is stopped (SIGTERM, SIGKILL to its group
// after grace); a second one cuts the delay short. Other signals are
// forwarded.
//
// A child that exits by itself is restarted when restartPolicy says so
// (Always; OnFailure after a non-zero exit), else healthbridge ends with
// its exit code. When the liveness verdict fails, onLivenessFailure:
// restart stops the child (after the drain) and starts it again; exit
// stops it and ends healthbridge with config.ExitLivenessFailed. Restarts
// wait the kubelet's CrashLoopBackOff; while the child is down the checks
// are back to starting (readiness fails), and they start over with the
// new child.
//
// childPid is kept at the running child's pid (0 while none runs).
func superviseWithChecks(sc *app.Sidecar, cfg *config.Config, argv []string, group bool, childPid *atomic.Int64, stderr io.Writer, log *slog.Logger) int {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, supervise.Forwarded...)
	defer signal.Stop(sig)
	store := sc.Store()
	env := childEnv(cfg)
	child, err := supervise.Start(argv, group, env...)
	if err != nil {
		_ = sc.Close()
		fmt.Fprintln(stderr, "healthbridge run:", err)
		return exitError
	}
	log.Info("child started", "pid", child.Pid(), "command", strings.Join(argv, " "))
	var (
		backoff  supervise.Backoff
		restarts = map[string]uint64{}
		lastExit = -1
	)
	publish := func() {
		pid := 0
		if child != nil {
			select {
			case <-child.Done():
			default:
				pid = child.Pid()
			}
		}
		r := make(map[string]uint64, len(restarts))
		for k, v := range restarts {
			r[k] = v
		}
		childPid.Store(int64(pid))
		st := &state.ChildState{Pid: pid, Restarts: r, LastExitCode: lastExit, Backoff: backoff.Current()}
		if child != nil {
			st.Started = child.Started()
		}
		store.SetChild(st)
	}
	publish()

	ctx, terminate := context.WithCancel(context.Background())
	defer terminate()
	hurry := make(chan struct{})
	var hurryOnce sync.Once
	runDone := make(chan error, 1)
	go func() { runDone <- sc.Run(ctx, hurry) }()

	// The liveness verdict, after thresholds, from each publication.
	livenessFailed := make(chan struct{}, 1)
	if cfg.OnLivenessFailure != config.LivenessNone {
		go func() {
			for {
				changed := store.Changed()
				if !store.Snapshot().Plain(state.ScopeLiveness) {
					select {
					case livenessFailed <- struct{}{}:
					default:
					}
				}
				select {
				case <-changed:
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	exitCode := -1 // set when healthbridge decides its own exit code
	stopping := func(s os.Signal) {
		if ctx.Err() == nil {
			log.Info("stopping: readiness fails, then the child is stopped", "signal", s.String())
			terminate()
		} else {
			hurryOnce.Do(func() { close(hurry) })
		}
	}
	// wait waits d while handling signals; false when a stop began.
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				return true
			case s := <-sig:
				if s == syscall.SIGTERM || s == syscall.SIGINT {
					stopping(s)
					return false
				}
				if child != nil {
					_ = child.Signal(s.(syscall.Signal))
				}
			}
		}
	}
	// restart restarts the child for reason; false when a stop began
	// meanwhile (the child is then down).
	restart := func(reason string) bool {
		sc.PauseChecks(time.Now())
		ran := time.Since(child.Started())
		select {
		case <-child.Done():
		default:
			if !wait(sc.ShutdownDelay()) { // drain: readiness already fails
				lastExit = child.Stop(cfg.TerminationGracePeriod())
				return false
			}
			lastExit = child.Stop(cfg.TerminationGracePeriod())
		}
		d := backoff.Next(ran)
		publish()
		log.Info("restarting the child", "reason", reason, "exit_code", lastExit, "backoff", d)
		if !wait(d) {
			return false
		}
		next, err := supervise.Start(argv, group, env...)
		if err != nil {
			log.Error("cannot restart the child", "error", err)
			exitCode = exitError
			terminate()
			return false
		}
		child = next
		restarts[reason]++
		publish()
		sc.ResumeChecks()
		log.Info("child started", "pid", child.Pid(), "restarts", restarts[reason], "reason", reason)
		return true
	}

	for {
		var childDone <-chan struct{}
		if child != nil && ctx.Err() == nil {
			childDone = child.Done()
		}
		select {
		case s := <-sig:
			if s == syscall.SIGTERM || s == syscall.SIGINT {
				stopping(s)
			} else {
				_ = child.Signal(s.(syscall.Signal))
			}
		case err := <-runDone:
			// The sidecar is done: after the signal and the shutdown delay,
			// or because a server failed.
			if err != nil {
				log.Error("sidecar stopped", "error", err)
			}
			code := child.Stop(cfg.TerminationGracePeriod())
			log.Info("child exited", "code", code)
			if exitCode >= 0 {
				return exitCode
			}
			return code
		case <-childDone:
			lastExit = child.Code()
			log.Info("child exited by itself", "code", lastExit)
			again := cfg.RestartPolicy == config.RestartAlways || (cfg.RestartPolicy == config.RestartOnFailure && lastExit != 0)
			if !again {
				publish()
				terminate()
				hurryOnce.Do(func() { close(hurry) })
				if err := <-runDone; err != nil {
					log.Error("sidecar stopped", "error", err)
				}
				return lastExit
			}
			restart("exit")
		case <-livenessFailed:
			// A signal queued before a restart put the checks back to
			// starting is stale: judge the current verdict.
			if ctx.Err() != nil || store.Snapshot().Plain(state.ScopeLiveness) {
				continue
			}
			switch cfg.OnLivenessFailure {
			case config.LivenessRestart:
				log.Warn("liveness failed: restarting the child")
				restart("liveness")
			case config.LivenessExit:
				log.Warn("liveness failed: stopping the child and exiting", "exit_code", config.ExitLivenessFailed)
				exitCode = config.ExitLivenessFailed
				terminate()
			}
		}
	}
}

// startable checks, before anything starts, that the command can be
// started: argv[0] found on $PATH (or as a path) and executable.
func startable(argv []string) error {
	if _, err := exec.LookPath(argv[0]); err != nil {
		return fmt.Errorf("command %q: %v", argv[0], errors.Unwrap(err))
	}
	return nil
}

// childEnv tells the child where its rundir check reads, so that the
// health package and the Python client write there: HEALTHBRIDGE_RUNDIR
// (the check's path; the health package's default otherwise) and
// HEALTHBRIDGE_UNIT (its unit), from the config's first rundir check.
func childEnv(cfg *config.Config) []string {
	for i := range cfg.Checks {
		if r := cfg.Checks[i].Rundir; r != nil {
			path := r.Path
			if path == "" {
				path = health.DefaultRunDir()
			}
			return []string{health.EnvRunDir + "=" + path, "HEALTHBRIDGE_UNIT=" + r.Unit}
		}
	}
	return nil
}

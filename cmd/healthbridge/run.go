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
	"sync/atomic"
	"syscall"

	"github.com/healthbridge/healthbridge/health"
	"github.com/healthbridge/healthbridge/internal/app"
	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/idlegc"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/proc"
	"github.com/healthbridge/healthbridge/internal/supervise"
)

const runUsage = `Usage: healthbridge run [--config FILE] [--signal-group] [--reload-signal SIG] [flags] -- CMD [ARG]...

Runs CMD as healthbridge's child, as a container's init (tini, dumb-init):
same stdin, stdout, stderr, environment and directory; SIGTERM, SIGINT,
SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH forwarded (to its whole
process group with --signal-group); orphans reaped; healthbridge exits with
the child's exit code, or 128+N when signal N killed it.

With --config, the checks run and are served as usual, and SIGTERM stops in
order: readiness fails, the server answers for shutdownDelaySeconds, then
the child gets SIGTERM and, after terminationGracePeriodSeconds (default
30), its process group SIGKILL. The config's command: is the child when no
CMD follows "--". The config reloads on POST /-/reload (reloadEndpoint) and
with watchConfig; SIGHUP goes to the child unless --reload-signal SIGHUP
makes it reload the config instead.

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
	reloadSig := fs.String("reload-signal", "", "with --config: this signal (SIGHUP, SIGUSR1 or SIGUSR2) reloads the config instead of going to the child")
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
	var reloadOn syscall.Signal
	if *reloadSig != "" {
		var ok bool
		if reloadOn, ok = reloadSignals[strings.ToUpper(strings.TrimPrefix(strings.ToUpper(*reloadSig), "SIG"))]; !ok {
			fmt.Fprintf(stderr, "healthbridge run: --reload-signal %q: want SIGHUP, SIGUSR1 or SIGUSR2\n", *reloadSig)
			return exitUsage
		}
		if g.config == "" {
			fmt.Fprintln(stderr, "healthbridge run: --reload-signal needs --config: there is no config to reload")
			return exitUsage
		}
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
		// ConfigFile: /-/reload and watchConfig reload it; SIGHUP goes to the
		// child, as tini forwards it, unless --reload-signal claims it.
		var reload chan struct{}
		if reloadOn != 0 {
			reload = make(chan struct{}, 1)
		}
		sc, err := app.Build(cfg, app.Options{Logger: log, Reap: true, Kubeconfig: g.kubecfg, ConfigFile: g.config,
			ChildPid: func() int { return int(childPid.Load()) }, Reload: reload})
		if err != nil {
			printErrors(stderr, "start-up", err)
			return exitUsage
		}
		return superviseWithChecks(sc, cfg, argv, *group, &childPid, reloadOn, reload, log)
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

// reloadSignals are the signals --reload-signal may claim, by name
// without "SIG".
var reloadSignals = map[string]syscall.Signal{"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2}

// superviseWithChecks is init with checks, acting on health: the
// supervise.Supervisor's loop. reloadOn (0 for none) is the signal that
// requests a reload on reload instead of going to the child.
func superviseWithChecks(sc *app.Sidecar, cfg *config.Config, argv []string, group bool, childPid *atomic.Int64, reloadOn syscall.Signal, reload chan<- struct{}, log *slog.Logger) int {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, supervise.Forwarded...)
	defer signal.Stop(sig)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go idlegc.Run(ctx, log)
	if reloadOn != 0 {
		// The supervisor sees every signal but the reload signal.
		received := sig
		sig = make(chan os.Signal, 16)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case s := <-received:
					if s == reloadOn {
						select {
						case reload <- struct{}{}:
						default: // one pending reload reads the file anyway
						}
						continue
					}
					select {
					case sig <- s:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	return supervise.NewSupervisor(sc, supervise.Options{
		Argv: argv, Env: childEnv(cfg), Group: group,
		RestartPolicy: cfg.RestartPolicy, OnFailure: cfg.OnLivenessFailure,
		Grace: cfg.TerminationGracePeriod(), ChildPid: childPid, Log: log,
	}).Run(sig)
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

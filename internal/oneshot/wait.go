package oneshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/scheduler"
	"github.com/healthbridge/healthbridge/internal/state"
)

// Wait's exit codes beyond ExitHealthy and ExitUsage.
const (
	// ExitTimeout is the exit code when --timeout passes first, as
	// timeout(1) and wait-for-it.sh.
	ExitTimeout = 124
	// ExitCannotRun and ExitNotFound are a shell's codes for a command that
	// could not be executed and one that was not found.
	ExitCannotRun = 126
	ExitNotFound  = 127
)

// Wait's defaults.
const (
	// DefaultWaitTimeout is wait-for-it.sh's and dockerize's: long enough
	// for a database to start, short enough that a typo in a target fails
	// a deployment visibly.
	DefaultWaitTimeout = 15 * time.Second
	// DefaultWaitInterval is the time between two tries of a target.
	DefaultWaitInterval = time.Second
	// DefaultMaxInterval caps --backoff exponential.
	DefaultMaxInterval = 30 * time.Second
)

// WaitUsage is the usage of the wait command.
func (c CLI) WaitUsage() string {
	var schemes []string
	for _, k := range kinds.List {
		if k.OneShot != nil {
			for _, s := range k.OneShot.Schemes {
				schemes = append(schemes, s+"://")
			}
		}
	}
	return `Usage:
  ` + c.Prog + ` wait [flags] TARGET... [-- COMMAND [ARG]...]
  ` + c.Prog + ` wait --config FILE [--role readiness] [flags] [TARGET...] [-- COMMAND [ARG]...]

Waits until every TARGET passes, trying them in parallel, then runs COMMAND in
its place (exec: same process, signals reach it directly) or exits 0. A TARGET is
a URL of one of: ` + strings.Join(schemes, " ") + `
  tcp://db:5432   http://api:8080/healthz   https://api/ready   grpc://api:9090/my.Service
  dns://db.example   udp://stats:8125?send=ping&expect=pong   rundir:///run/app?unit=web   file:///run/migrated
or HOST:PORT (tcp). A URL's query parameters are the flags of the same probe in
"` + c.ProbeCmd + `" (?service=, ?unit=, ?type=, ?expect=, ?insecure=true …).

Flags:
  --timeout D         give up after D and exit 124 without running COMMAND (default 15s; 0: wait for ever)
  --interval D        time between two tries of a target (default 1s)
  --backoff exponential  double the interval after each failed try, up to --max-interval
  --max-interval D    (default 30s)
  --probe-timeout D   bound on each try (default 5s, never past --timeout)
  --invert            wait until every target fails instead
  -q, --quiet         print nothing but errors
  --config FILE       also wait until every check of FILE with --role (default readiness) is healthy, each on
                      its own schedule and thresholds, as the sidecar judges it (ttl checks are left out)

Exit: COMMAND's own status (or 0 without COMMAND) once every target passes; 124 on
timeout; 2 for a bad target or flag (nothing is tried); 126/127 when COMMAND
cannot be run / is not found; 128+N on signal N.
`
}

// waitTarget is one target being waited for.
type waitTarget struct {
	name string // as the user wrote it
	p    oneProbe
}

// Wait runs the wait command (`healthbridge wait ARGS`): it returns the
// exit code, or, once every target passed and a command follows "--",
// replaces the process by it (syscall.Exec) and does not return.
func (c CLI) Wait(args []string, stdout, stderr io.Writer) int {
	// SIGTERM and SIGINT end the wait (a container's PID 1 would ignore
	// them otherwise) with 128 + the signal's number, as a shell reports.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	var got atomic.Int32
	go func() {
		if s, ok := <-sigs; ok {
			got.Store(int32(s.(syscall.Signal)))
			cancel()
		}
	}()
	code, command := c.wait(ctx, args, stdout, stderr)
	signal.Stop(sigs) // the command gets the signals' default dispositions back
	if n := got.Load(); n != 0 {
		return 128 + int(n)
	}
	if code != ExitHealthy || len(command) == 0 {
		return code
	}
	return execCommand(command, stderr)
}

// execCommand replaces the process by command; it returns only when it
// could not (126: not executable, 127: not found), saying why.
func execCommand(command []string, stderr io.Writer) int {
	path, err := exec.LookPath(command[0])
	if err != nil {
		fmt.Fprintf(stderr, "wait: cannot run %q: %v\n", command[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return ExitNotFound
		}
		return ExitCannotRun
	}
	err = syscall.Exec(path, command, os.Environ())
	fmt.Fprintf(stderr, "wait: cannot run %q: %v\n", path, err)
	if errors.Is(err, os.ErrNotExist) {
		return ExitNotFound
	}
	return ExitCannotRun
}

// wait is Wait up to the exec: the exit code and the command to run
// (nil: none).
func (c CLI) wait(ctx context.Context, args []string, stdout, stderr io.Writer) (int, []string) {
	fail := func(err error) (int, []string) {
		fmt.Fprintln(stderr, c.Prog+" wait:", flagHint(err))
		fmt.Fprint(stderr, c.WaitUsage())
		return ExitUsage, nil
	}
	var command []string
	for i, a := range args {
		if a == "--" {
			args, command = args[:i], args[i+1:]
			if len(command) == 0 {
				return fail(errors.New(`nothing after "--": want a COMMAND to run`))
			}
			break
		}
	}
	fs := pflag.NewFlagSet(c.Prog+" wait", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", DefaultWaitTimeout, "")
	interval := fs.Duration("interval", DefaultWaitInterval, "")
	backoff := fs.String("backoff", "", "")
	maxInterval := fs.Duration("max-interval", DefaultMaxInterval, "")
	probeTimeout := fs.Duration("probe-timeout", DefaultTimeout, "")
	invert := fs.Bool("invert", false, "")
	quiet := fs.BoolP("quiet", "q", false, "")
	help := fs.BoolP("help", "h", false, "")
	file := fs.String("config", "", "")
	roleName := fs.String("role", "", "")
	if err := fs.Parse(args); err != nil {
		return fail(err)
	}
	if *help {
		fmt.Fprint(stdout, c.WaitUsage())
		return ExitHealthy, nil
	}
	switch {
	case *timeout < 0:
		return fail(fmt.Errorf("--timeout: must be ≥ 0 (0: for ever), got %v", *timeout))
	case *interval <= 0:
		return fail(fmt.Errorf("--interval: must be > 0, got %v", *interval))
	case *probeTimeout <= 0:
		return fail(fmt.Errorf("--probe-timeout: must be > 0, got %v", *probeTimeout))
	case *maxInterval < *interval:
		return fail(fmt.Errorf("--max-interval: must be ≥ --interval (%v), got %v", *interval, *maxInterval))
	case *backoff != "" && *backoff != "exponential":
		return fail(fmt.Errorf("--backoff: want exponential, got %q", *backoff))
	case fs.NArg() == 0 && *file == "":
		return fail(errors.New("no TARGET to wait for"))
	case *roleName != "" && *file == "":
		return fail(errors.New("--role needs --config FILE"))
	}
	var cw *configWait
	if *file != "" {
		var err error
		if cw, err = newConfigWait(*file, *roleName); err != nil {
			fmt.Fprintln(stderr, c.Prog+" wait:", err)
			return ExitUsage, nil
		}
	}
	var targets []waitTarget
	for _, arg := range fs.Args() {
		o, err := targetProbe(arg, *probeTimeout)
		if err != nil {
			return fail(fmt.Errorf("target %q: %w", arg, err))
		}
		targets = append(targets, waitTarget{name: arg, p: o})
	}

	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	w := waiter{stderr: stderr, quiet: *quiet, invert: *invert, interval: *interval, maxInterval: *maxInterval,
		exponential: *backoff == "exponential", start: time.Now(), last: map[string]string{}, pending: make([]string, len(targets))}
	if cw != nil {
		w.pending = append(w.pending, "")
	}
	var wg sync.WaitGroup
	if cw != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cw.await(ctx, &w, len(targets))
		}()
	}
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.await(ctx, i, t)
		}()
	}
	wg.Wait()
	if w.pendingText() == "" {
		return ExitHealthy, command
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		fmt.Fprintf(stderr, "%s wait: timed out after %v; still waiting for: %s\n", c.Prog, *timeout, w.pendingText())
		return ExitTimeout, nil
	}
	fmt.Fprintf(stderr, "%s wait: stopped by a signal; still waiting for: %s\n", c.Prog, w.pendingText())
	return ExitUnhealthy, nil // Wait returns 128 + the signal
}

// targetProbe builds the probe of one wait target: a URL whose scheme a
// kind lists (its Target gives the positional arguments, its query the
// flags), or HOST:PORT, a tcp target.
func targetProbe(arg string, timeout time.Duration) (oneProbe, error) {
	scheme, _, isURL := strings.Cut(arg, "://")
	if !isURL {
		if strings.HasPrefix(arg, "-") {
			return oneProbe{}, errors.New("a flag among the targets that is not a wait flag")
		}
		arg, scheme = "tcp://"+arg, "tcp"
	}
	u, err := url.Parse(arg)
	if err != nil {
		return oneProbe{}, err
	}
	var kind *probe.Kind
	var all []string
	for _, k := range kinds.List {
		if k.OneShot == nil || k.OneShot.Target == nil {
			continue
		}
		for _, s := range k.OneShot.Schemes {
			all = append(all, s+"://")
			if strings.EqualFold(s, scheme) {
				kind = k
			}
		}
	}
	if kind == nil {
		if k := kinds.ForWord(scheme); k != nil && k.OneShot == nil {
			return oneProbe{}, fmt.Errorf("%s:// is not in this binary", scheme)
		}
		return oneProbe{}, fmt.Errorf("unknown scheme %q: want HOST:PORT or one of %s", scheme+"://", strings.Join(all, ", "))
	}
	pos, err := kind.OneShot.Target(u)
	if err != nil {
		return oneProbe{}, err
	}
	args := append([]string(nil), pos...)
	// The query's parameters are the kind's flags, in the order given;
	// http(s) keeps its query as part of the URL.
	if u.RawQuery != "" && !slices.Contains(kind.OneShot.Words, scheme+"://") {
		for _, kv := range strings.Split(u.RawQuery, "&") {
			k, v, _ := strings.Cut(kv, "=")
			var err error
			if k, err = url.QueryUnescape(k); err == nil {
				v, err = url.QueryUnescape(v)
			}
			if err != nil {
				return oneProbe{}, fmt.Errorf("query %q: %w", kv, err)
			}
			if k == "timeout" || k == "v" || k == "verbose" || k == "help" {
				return oneProbe{}, fmt.Errorf("?%s= is not a probe flag here (use --probe-timeout)", k)
			}
			args = append(args, "--"+k+"="+v)
		}
	}
	args = append(args, "--timeout="+timeout.String())
	return build(args, nil)
}

// waiter is the state the target loops share.
type waiter struct {
	stderr        io.Writer
	quiet, invert bool
	interval      time.Duration
	maxInterval   time.Duration
	exponential   bool
	start         time.Time
	mu            sync.Mutex
	last          map[string]string // each target's last reported state
	pending       []string          // targets not reached, with their state
}

// await tries t until it reaches the awaited outcome or ctx ends; on the
// latter it records t's state as w.pending[i].
func (w *waiter) await(ctx context.Context, i int, t waitTarget) {
	interval := w.interval
	tries := 0
	var why string
	for {
		tries++
		// Each try is bounded by its own timeout and by what is left.
		r, _ := probe.Run(ctx, t.p.p, t.p.timeout)
		if ctx.Err() != nil && tries > 1 {
			break // the try was cut short: it says nothing
		}
		passing := r.Outcome.Passing()
		if passing != w.invert && ctx.Err() == nil {
			w.say(t.name, "ready", fmt.Sprintf("%s: %s (%s)", w.doneWord(), t.name, w.progress(tries)))
			return
		}
		why = oneLine(r.Output)
		if why == "" {
			why = r.Outcome.String()
		}
		if w.invert {
			why = "still passing: " + why
		}
		if ctx.Err() != nil {
			break
		}
		w.say(t.name, why, fmt.Sprintf("waiting for %s%s: %s (%s)", t.name, w.invertWord(), why, w.progress(tries)))
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
		case <-timer.C:
		}
		if ctx.Err() != nil {
			break
		}
		if w.exponential {
			interval = min(2*interval, w.maxInterval)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if why == "" {
		why = "not tried to the end"
	}
	w.pending[i] = fmt.Sprintf("%s (%s, %d tries)", t.name, why, tries)
}

func (w *waiter) doneWord() string {
	if w.invert {
		return "down"
	}
	return "ready"
}

func (w *waiter) invertWord() string {
	if w.invert {
		return " to fail"
	}
	return ""
}

func (w *waiter) progress(tries int) string {
	word := "tries"
	if tries == 1 {
		word = "try"
	}
	return fmt.Sprintf("%d %s, %.1fs", tries, word, time.Since(w.start).Seconds())
}

// say prints line once per change of the target's state (a new reason,
// or done); -q prints nothing.
func (w *waiter) say(target, state, line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last[target] == state {
		return
	}
	w.last[target] = state
	if !w.quiet {
		fmt.Fprintln(w.stderr, line)
	}
}

// pendingText lists the targets not reached, in command-line order.
func (w *waiter) pendingText() string {
	var left []string
	for _, p := range w.pending {
		if p != "" {
			left = append(left, p)
		}
	}
	return strings.Join(left, "; ")
}

// configWait waits for the verdict of one role of a config's checks, run
// by the sidecar's own scheduler and judged by its own store: the same
// periods, thresholds, start periods and startup gating.
type configWait struct {
	name   string // for messages: "--config FILE (role readiness)"
	store  *state.Store
	checks []scheduler.Check
}

// newConfigWait loads file and builds the probers of the checks of role
// (default readiness). Its errors are usage errors naming the file and
// field.
func newConfigWait(file, roleName string) (*configWait, error) {
	role := config.RoleReadiness
	if roleName != "" {
		r, err := config.ParseRole(roleName)
		if err != nil {
			return nil, fmt.Errorf("--role: %w", err)
		}
		role = r
	}
	cfg, err := kinds.Load(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var probers []probe.Prober
	var specs []state.Spec
	for i := range cfg.Checks {
		c := &cfg.Checks[i]
		k := kinds.Of(c)
		if !c.HasRole(role) || k == nil || k.Push != nil {
			continue // a push check has nothing to ask
		}
		p, err := k.New(c, probe.Deps{UserAgent: UserAgent})
		if err != nil {
			return nil, fmt.Errorf("%s: checks[%d].%w", file, i, err)
		}
		probers = append(probers, p)
		specs = append(specs, kinds.Spec(c, k))
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("%s: no check with the %s role to wait for (ttl checks are left out)", file, role)
	}
	store := state.NewStore(specs, time.Now())
	cw := &configWait{name: fmt.Sprintf("--config %s (role %s)", file, role), store: store}
	for i, slot := range store.Slots() {
		cw.checks = append(cw.checks, scheduler.Check{Slot: slot, Prober: probers[i], Inflight: new(scheduler.Inflight)})
	}
	return cw, nil
}

// await runs the checks until every one is healthy (with --invert:
// unhealthy), by its own successThreshold and failureThreshold, or ctx
// ends (then it records what is left as w.pending[i]), saying each
// check's changes of status. It waits for the checks' status, not for the
// role's verdict: a liveness verdict passes while its checks are still
// starting, which is no reason to stop waiting.

func (cw *configWait) await(ctx context.Context, w *waiter, i int) {
	sched := scheduler.New(cw.checks, nil)
	sched.Start(ctx)
	defer sched.Stop()
	for {
		changed := cw.store.Changed() // before reading: no change falls between
		snap := cw.store.Snapshot()
		var left []string
		for c := range snap.Checks() {
			st := c.State.Status.String()
			if reached(c.State.Status, w.invert) {
				continue
			}
			why := st
			if n := len(c.State.Results); n > 0 {
				if out := oneLine(c.State.Results[n-1].Output); out != "" {
					why += ": " + out
				}
			}
			left = append(left, c.Name+" "+st)
			w.say(cw.name+"/"+c.Name, why, fmt.Sprintf("waiting for check %s of %s%s: %s (%d runs, %.1fs)",
				c.Name, cw.name, w.invertWord(), why, c.State.Runs, time.Since(w.start).Seconds()))
		}
		if len(left) == 0 {
			w.say(cw.name, "done", fmt.Sprintf("%s: %s (%.1fs)", w.doneWord(), cw.name, time.Since(w.start).Seconds()))
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			w.mu.Lock()
			w.pending[i] = fmt.Sprintf("%s (%s)", cw.name, strings.Join(left, ", "))
			w.mu.Unlock()
			return
		}
	}
}

// reached reports whether a check's status is the awaited one.
func reached(st state.Status, invert bool) bool {
	if invert {
		return st == state.StatusUnhealthy
	}
	return st == state.StatusHealthy
}

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

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
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

Waits until every TARGET passes, trying them in parallel, then runs COMMAND in
its place (exec: same process, signals reach it directly) or exits 0. A TARGET is
a URL of one of: ` + strings.Join(schemes, " ") + `
  tcp://db:5432   http://api:8080/healthz   https://api/ready   grpc://api:9090/my.Service
  dns://db.example   udp://stats:8125?send=ping&expect=pong   rundir:///run/app?unit=web
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
	case fs.NArg() == 0:
		return fail(errors.New("no TARGET to wait for"))
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
	var wg sync.WaitGroup
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

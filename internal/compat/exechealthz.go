// Package compat turns the command lines and environments of the tools
// healthbridge replaces into healthbridge configs, so that it can be dropped
// in where they ran.
package compat

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/server"
	"github.com/healthbridge/healthbridge/internal/state"
)

// Exechealthz's defaults (kubernetes/contrib exec-healthz).
const (
	ExechealthzPort    = 8080
	ExechealthzPeriod  = 2 * time.Second
	ExechealthzLatency = 30 * time.Second
	ExechealthzURL     = "/healthz"
	ExechealthzCmd     = "echo healthz"
)

var exechealthzFlags = map[string]bool{"cmd": true, "url": true, "period": true, "latency": true, "port": true, "quiet": true, "output": true}

// ExechealthzFlags returns the names (without dashes) of exechealthz's own
// flags (-cmd, -url, -period, -latency, -port, -quiet, -output) given in
// args before any "--", in order and without repeats.
//
// The exechealthz mode is chosen only for exechealthz's own command line:
// the caller requires -cmd among them and refuses any mix with native flags,
// so a stray -port beside --config is a usage error, never a silent switch
// to an always-healthy "echo healthz".
func ExechealthzFlags(args []string) []string {
	var names []string
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name := strings.TrimLeft(a, "-")
		name, _, _ = strings.Cut(name, "=")
		if exechealthzFlags[name] && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// Exechealthz is a parsed exechealthz command line.
type Exechealthz struct {
	// Port is -port.
	Port int
	// Period is -period: time between the end of a run and the next.
	Period time.Duration
	// Latency is -latency: a result older than this answers 503; it is also
	// each run's timeout.
	Latency time.Duration
	// Quiet is -quiet: log errors only.
	Quiet bool
	// Output is -output: answer with the command's output instead of "ok".
	Output bool
	// Pairs are the -url/-cmd pairs, in order.
	Pairs []URLCmd
}

// URLCmd is one served path and the shell command behind it.
type URLCmd struct {
	URL, Cmd string
	// Check is the name of the generated check.
	Check string
}

// ParseExechealthz parses exechealthz's flags. -url and -cmd may repeat and
// pair up in order (the later exechealthz); a lone -cmd serves /healthz.
// extra, when not nil, registers the caller's own flags on the same set.
// For -h or --help the flags are printed to help and flag.ErrHelp is
// returned; other errors are returned unprinted.
func ParseExechealthz(args []string, help io.Writer, extra func(*flag.FlagSet)) (*Exechealthz, error) {
	e := &Exechealthz{}
	fs := flag.NewFlagSet("healthbridge (exechealthz mode)", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if extra != nil {
		extra(fs)
	}
	var urls, cmds []string
	fs.IntVar(&e.Port, "port", ExechealthzPort, "port to serve on")
	fs.DurationVar(&e.Period, "period", ExechealthzPeriod, "time between runs of each command")
	fs.DurationVar(&e.Latency, "latency", ExechealthzLatency, "a result older than this answers 503; also each run's timeout")
	fs.BoolVar(&e.Quiet, "quiet", false, "log only errors")
	fs.BoolVar(&e.Output, "output", false, "answer with the command's output instead of \"ok\"")
	fs.Func("url", "path served by the matching -cmd (repeatable; default /healthz)", func(s string) error {
		urls = append(urls, s)
		return nil
	})
	fs.Func("cmd", "shell command run with sh -c (repeatable, pairs with -url)", func(s string) error {
		cmds = append(cmds, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(help, "Usage: healthbridge -cmd \"COMMAND\" [-url /healthz] [-period 2s] [-latency 30s] [-port 8080] [-quiet] [-output]")
			fs.SetOutput(help)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if e.Port < 0 || e.Port > 65535 {
		errs = append(errs, fmt.Errorf("-port: must be 0-65535, got %d", e.Port))
	}
	// exechealthz takes any positive duration (time.NewTicker panics on
	// zero or less): -period 500ms runs the command twice a second.
	if e.Period <= 0 {
		errs = append(errs, fmt.Errorf("-period: must be > 0, got %v", e.Period))
	}
	if e.Latency <= 0 {
		errs = append(errs, fmt.Errorf("-latency: must be > 0, got %v", e.Latency))
	}
	if len(cmds) == 0 {
		cmds = []string{ExechealthzCmd}
	}
	if len(urls) == 0 && len(cmds) == 1 {
		urls = []string{ExechealthzURL}
	}
	if len(urls) != len(cmds) {
		errs = append(errs, fmt.Errorf("-url/-cmd: %d -url for %d -cmd: give one -url per -cmd", len(urls), len(cmds)))
	}
	seen, names := map[string]bool{}, map[string]bool{}
	for i := range min(len(urls), len(cmds)) {
		u, c := urls[i], cmds[i]
		if !strings.HasPrefix(u, "/") {
			errs = append(errs, fmt.Errorf("-url %q: must start with '/'", u))
		}
		if seen[u] {
			errs = append(errs, fmt.Errorf("-url %q: given twice", u))
		}
		seen[u] = true
		if strings.TrimSpace(c) == "" {
			errs = append(errs, fmt.Errorf("-cmd (for %s): must not be empty", u))
		}
		e.Pairs = append(e.Pairs, URLCmd{URL: u, Cmd: c, Check: checkName(u, i, names)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// checkName derives a check name from a served path: "/healthz-dnsmasq"
// becomes "healthz-dnsmasq"; a name already taken gets "-<index>".
func checkName(url string, i int, taken map[string]bool) string {
	n := strings.Trim(unsafeName.ReplaceAllString(url, "-"), "-")
	if n == "" {
		n = "root"
	}
	if taken[n] {
		n += "-" + strconv.Itoa(i)
	}
	taken[n] = true
	return n
}

// Config returns the healthbridge config equivalent to e: one exec check per
// pair, running [sh, -c, cmd] every Period (which may be under a second,
// as exechealthz allows) with Latency as its timeout, and thresholds of 1
// (exechealthz answers from the last run alone).
func (e *Exechealthz) Config() *config.Config {
	c := &config.Config{
		Listen:       ":" + strconv.Itoa(e.Port),
		ExposeOutput: true, // exechealthz always showed the output
	}
	for _, p := range e.Pairs {
		ch := config.Check{Name: p.Check}
		ch.Exec = &config.ExecAction{Command: []string{"sh", "-c", p.Cmd}}
		ch.PeriodSeconds = int32(max(1, e.Period/time.Second))
		ch.TimeoutSeconds = int32(max(1, e.Latency/time.Second))
		ch.PeriodOverride, ch.TimeoutOverride = e.Period, e.Latency
		ch.SuccessThreshold, ch.FailureThreshold = 1, 1
		c.Checks = append(c.Checks, ch)
	}
	c.SetDefaults(kinds.Rules)
	return c
}

// shellWord is a first word that `command -v` can check: no quoting,
// expansion or redirection.
var shellWord = regexp.MustCompile(`^[A-Za-z0-9_./+-]+$`)

// SanityCheck fixes exechealthz's "doesn't sanity check the probe command":
// sh must exist, and when a command starts with a plain word, that word must
// be something sh can run (a binary on $PATH, a builtin or a function), so
// a typo is a start-up error rather than a stream of 503s.
func (e *Exechealthz) SanityCheck() error {
	if _, err := exec.LookPath("sh"); err != nil {
		return fmt.Errorf("-cmd: sh not found: %w", err)
	}
	var errs []error
	for _, p := range e.Pairs {
		f := strings.Fields(p.Cmd)
		if len(f) == 0 || !shellWord.MatchString(f[0]) {
			continue
		}
		out, err := exec.Command("sh", "-c", `command -v -- "$1"`, "sh", f[0]).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) == 0 {
			errs = append(errs, fmt.Errorf("-cmd %q: command %q not found", p.Cmd, f[0]))
		}
	}
	return errors.Join(errs...)
}

// Wrap is the exechealthz mode as middleware around healthbridge's own
// handler: each -url path (exactly) answers as exechealthz did, from the
// store: 200 "ok" (or the output with -output) when the last run succeeded
// and is not older than Latency; else 503 with exechealthz's text. Before
// the first result: 503, never a false ok. Every other path goes to core
// (/readyz, /livez, /metrics, ...).
func (e *Exechealthz) Wrap(core http.Handler, store *state.Store) http.Handler {
	hs := map[string]http.Handler{}
	for _, p := range e.Pairs {
		hs[p.URL] = server.ReadOnly(&exechealthzHandler{store: store, check: p.Check, latency: e.Latency, output: e.Output})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := hs[r.URL.Path]; ok {
			h.ServeHTTP(w, r)
			return
		}
		core.ServeHTTP(w, r)
	})
}

type exechealthzHandler struct {
	store   *state.Store
	check   string
	latency time.Duration
	output  bool
	now     func() time.Time // nil: time.Now
}

func (h *exechealthzHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now
	if h.now != nil {
		now = h.now
	}
	c, ok := h.store.Snapshot().Get(h.check)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	last, ok := c.State.Last()
	if !ok {
		exechealthzError(w, fmt.Sprintf("Healthz probe error: no result yet: the command has not completed its first run since %v", c.State.StartedAt.Round(0)))
		return
	}
	errText := "None" // exechealthz's word for a nil error
	if !last.Outcome.Passing() {
		errText = describeExit(last)
	}
	result := fmt.Sprintf("Result of last exec: %v, at %v, error %v", last.Output, last.End.Round(0), errText)
	if !last.Outcome.Passing() {
		exechealthzError(w, "Healthz probe error: "+result)
		return
	}
	if now().Sub(last.End) > h.latency {
		exechealthzError(w, "Latest result too old to be useful: "+result+".")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if h.output {
		_, _ = io.WriteString(w, last.Output)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// exechealthzError answers 503 with msg as exechealthz did, through
// http.Error: text/plain, X-Content-Type-Options: nosniff, a final newline.
func exechealthzError(w http.ResponseWriter, msg string) {
	http.Error(w, msg, http.StatusServiceUnavailable)
}

// describeExit says why a run failed, in exechealthz's terms.
func describeExit(r probe.Result) string {
	switch {
	case r.ExitCode > 0:
		return fmt.Sprintf("exit status %d", r.ExitCode)
	case r.Outcome == probe.OutcomeUnknown:
		return "could not run: " + r.Output
	case r.ExitCode < 0:
		return "killed"
	default:
		return r.Outcome.String()
	}
}

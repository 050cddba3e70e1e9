// Package oneshot is healthbridge's one-shot client: run one probe (or every
// check of a config) once and exit with Docker's HEALTHCHECK contract, 0
// healthy and 1 unhealthy, so the static binary can be the HEALTHCHECK of an
// image that has no curl, wget or shell. It uses the sidecar's probe
// packages, so the semantics (status ranges, redirects, timeouts, exit
// codes) are the same.
package oneshot

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
)

// Exit codes, as Docker's HEALTHCHECK: 0 healthy, 1 unhealthy. 2 is a usage
// error (nothing was probed).
const (
	ExitHealthy   = 0
	ExitUnhealthy = 1
	ExitUsage     = 2
)

// DefaultTimeout bounds a one-shot probe unless --timeout says otherwise.
const DefaultTimeout = 5 * time.Second

// UserAgent is sent by HTTP and gRPC probes, as the sidecar's.
var UserAgent = probe.UserAgent()

// usage is the usage of `healthbridge probe`, one line per kind that has
// a one-shot form, from the kind list.
func usage() string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, k := range kinds.List {
		if k.OneShot != nil {
			b.WriteString("  healthbridge probe " + k.OneShot.Usage + "\n")
		}
	}
	b.WriteString(`
Exit 0 healthy, 1 unhealthy (Docker's HEALTHCHECK contract), 2 usage error.
Quiet on success; one line of reason on stderr on failure; -v for detail.
`)
	return b.String()
}

// flagHint adds a hint to a flag error where the fix is not obvious: a
// duration without a unit ("--timeout 5") needs one ("5s").
func flagHint(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "missing unit in duration") || (strings.Contains(msg, "invalid value") && strings.Contains(msg, "parse error")) {
		msg += ` (a duration needs a unit: write "5s", "500ms" or "1m")`
	}
	return msg
}

// Probe runs `healthbridge probe ARGS` and returns the exit code. The kind
// is chosen by the first argument that is not a flag (kinds.ForWord); the
// common flags (--timeout, -v) and the kind's own are then parsed with
// pflag, anywhere before "--".
func Probe(args []string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "healthbridge probe:", flagHint(err))
		fmt.Fprint(stderr, usage())
		return ExitUsage
	}
	// Everything after "--" is the exec command, untouched by flag parsing.
	var command []string
	for i, a := range args {
		if a == "--" {
			args, command = args[:i], args[i+1:]
			if command == nil {
				command = []string{}
			}
			break
		}
	}
	// The kind is the first argument that names one; flags and their
	// values may come before it ("--timeout 5s exec -- …").
	var (
		kind  *probe.Kind
		first string // the first argument that is not a flag
	)
	for _, a := range args {
		switch {
		case a == "-h" || a == "-help" || a == "--help":
			fmt.Fprint(stdout, usage()) // asked for: stdout, exit 0
			return ExitHealthy
		case strings.HasPrefix(a, "-") || kind != nil:
		default:
			if first == "" {
				first = a
			}
			kind = kinds.ForWord(a)
		}
	}
	switch {
	case kind == nil && first != "":
		return fail(fmt.Errorf("unknown probe %q: want %s", first, words()))
	case kind == nil:
		return fail(errors.New("what to probe is missing"))
	}
	// pflag: flags anywhere among the arguments, as GNU tools (and
	// kubectl) take them.
	fs := pflag.NewFlagSet("healthbridge probe", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", DefaultTimeout, "bound on the whole probe")
	verbose := fs.BoolP("verbose", "v", false, "print detail, also on success")
	build := kind.OneShot.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return fail(err)
	}
	pos := fs.Args()
	if *timeout <= 0 {
		return fail(fmt.Errorf("--timeout: must be > 0, got %v", *timeout))
	}
	if len(pos) == 0 || kinds.ForWord(pos[0]) != kind {
		return fail(fmt.Errorf("unknown probe %q: want %s", first, words()))
	}
	if command != nil && kind.Name != "exec" {
		return fail(errors.New(`arguments after "--" are only for exec`))
	}
	p, what, err := build(probe.Args{Pos: pos, Command: command, Timeout: *timeout, Deps: probe.Deps{UserAgent: UserAgent}})
	if err != nil {
		return fail(err)
	}
	r := runOne(p, *timeout)
	return report(stdout, stderr, what, r, *verbose)
}

// words lists what may follow `healthbridge probe`.
func words() string {
	var w []string
	for _, k := range kinds.List {
		if k.OneShot != nil {
			w = append(w, k.OneShot.Words...)
		}
	}
	return strings.Join(w, ", ")
}

// runOne runs p once, bounded by timeout plus probe.AbandonGrace even when
// the probe cannot be stopped (then it is left behind: the process exits).
func runOne(p probe.Prober, timeout time.Duration) probe.Result {
	r, _ := probe.Run(context.Background(), p, timeout)
	return r
}

// report prints the result and returns the exit code.
func report(stdout, stderr io.Writer, what string, r probe.Result, verbose bool) int {
	detail := oneLine(r.Output)
	if r.Outcome.Passing() {
		if verbose {
			fmt.Fprintf(stdout, "healthy: %s (%v)%s\n", what, r.Duration().Round(time.Millisecond), suffix(detail))
		}
		return ExitHealthy
	}
	label := "unhealthy"
	if r.Outcome == probe.OutcomeUnknown {
		label = "could not probe"
	}
	if what != "" && strings.Contains(detail, what) {
		// The output names the target already (Get "http://…": …): once
		// is enough.
		what, detail = detail, ""
	}
	if verbose {
		fmt.Fprintf(stderr, "%s: %s (%v, %s)%s\n", label, what, r.Duration().Round(time.Millisecond), r.Outcome, suffix(detail))
		if r.Output != "" && strings.Contains(strings.TrimSpace(r.Output), "\n") {
			fmt.Fprintln(stderr, r.Output)
		}
		if r.Detail != "" {
			fmt.Fprintln(stderr, r.Detail)
		}
	} else {
		fmt.Fprintf(stderr, "%s: %s%s\n", label, what, suffix(detail))
	}
	return ExitUnhealthy
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// oneLine shortens output to its first line, at most 200 bytes.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

const checkUsage = `Usage:
  healthbridge check --config FILE [--role liveness|readiness|startup] [-v]

Runs every check of FILE once (those of --role only, if given), concurrently,
each under its own timeoutSeconds. Exit 0 when all pass, 1 otherwise, 2 on a
bad config. ttl checks are skipped: they need pushed reports.
`

// Check runs `healthbridge check ARGS` and returns the exit code.
func Check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthbridge check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("config", "", "config file")
	roleName := fs.String("role", "", "only checks with this role")
	verbose := fs.Bool("v", false, "print every check's result")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *file == "" {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, checkUsage) // asked for: stdout, exit 0
			return ExitHealthy
		}
		if err == nil && fs.NArg() > 0 {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		} else if err == nil {
			err = errors.New("--config FILE is required")
		}
		fmt.Fprintln(stderr, "healthbridge check:", flagHint(err))
		fmt.Fprint(stderr, checkUsage)
		return ExitUsage
	}
	var role config.Role
	if *roleName != "" {
		r, err := config.ParseRole(*roleName)
		if err != nil {
			fmt.Fprintln(stderr, "healthbridge check: --role:", err)
			return ExitUsage
		}
		role = r
	}
	cfg, err := kinds.Load(*file)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "%s: %s\n", *file, line)
		}
		return ExitUsage
	}
	type job struct {
		c *config.Check
		p probe.Prober
		r probe.Result
	}
	var jobs []*job
	for i := range cfg.Checks {
		c := &cfg.Checks[i]
		k := kinds.Of(c)
		if (role != config.RoleUnknown && !c.HasRole(role)) || k == nil || k.Push != nil {
			continue // a push check has nothing to ask
		}
		p, err := k.New(c, probe.Deps{UserAgent: UserAgent})
		if err != nil {
			fmt.Fprintf(stderr, "%s: checks[%d].%v\n", *file, i, err)
			return ExitUsage
		}
		jobs = append(jobs, &job{c: c, p: p})
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.r = runOne(j.p, j.c.Timeout())
		}()
	}
	wg.Wait()
	code := ExitHealthy
	for _, j := range jobs {
		if report(stdout, stderr, j.c.Name, j.r, *verbose) != ExitHealthy {
			code = ExitUnhealthy
		}
	}
	return code
}

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
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

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

// CLI is the one-shot commands as one program spells them: the full
// binary's subcommands ("healthbridge probe …", "healthbridge check …",
// "healthbridge healthcheck …") or healthbridge-probe's, where probing is
// the command itself ("healthbridge-probe tcp …"). Usage texts name the
// commands as the user typed them.
type CLI struct {
	// ProbeCmd is the command that probes once: "healthbridge probe" or
	// "healthbridge-probe".
	ProbeCmd string
	// Prog is the program, before "check" and "healthcheck".
	Prog string
}

// Full is the healthbridge binary's CLI; ProbeOnly is healthbridge-probe's.
var (
	Full      = CLI{ProbeCmd: "healthbridge probe", Prog: "healthbridge"}
	ProbeOnly = CLI{ProbeCmd: "healthbridge-probe", Prog: "healthbridge-probe"}
)

// ConfigEnv names the environment variable that gives the config file when
// --config is not on the command line (serve and healthcheck read it).
const ConfigEnv = "HEALTHBRIDGE_CONFIG"

// ProbeUsage is the usage of the probe command, one line per kind that has
// a one-shot form, from the kind list.
func (c CLI) ProbeUsage() string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, k := range kinds.List {
		if k.OneShot != nil {
			b.WriteString("  " + c.ProbeCmd + " " + k.OneShot.Usage + "\n")
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

// Probe runs the probe command (`healthbridge probe ARGS`) and returns the
// exit code. The kind
// is chosen by the first argument that is not a flag (kinds.ForWord); the
// common flags (--timeout, -v) and the kind's own are then parsed with
// pflag, anywhere before "--".
func (c CLI) Probe(args []string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, c.ProbeCmd+":", flagHint(err))
		fmt.Fprint(stderr, c.ProbeUsage())
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
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, c.ProbeUsage()) // asked for: stdout, exit 0
			return ExitHealthy
		}
	}
	o, err := build(args, command)
	if err != nil {
		return fail(err)
	}
	r := runOne(o.p, o.timeout)
	return report(stdout, stderr, o.what, r, o.verbose)
}

// oneProbe is a probe built from a one-shot command line.
type oneProbe struct {
	p       probe.Prober
	what    string // the target, for messages
	timeout time.Duration
	verbose bool
}

// build builds the probe of a `healthbridge probe` command line: args
// before "--", command after it (nil: no "--"). The kind is chosen by the
// first argument that is not a flag (kinds.ForWord); the common flags
// (--timeout, -v) and the kind's own are then parsed with pflag, anywhere
// among the arguments. Its errors are usage errors.
func build(args, command []string) (oneProbe, error) {
	// The kind is the first argument that names one; flags and their
	// values may come before it ("--timeout 5s exec -- …").
	var (
		kind  *probe.Kind
		first string // the first argument that is not a flag
	)
	for _, a := range args {
		switch {
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
		return oneProbe{}, fmt.Errorf("unknown probe %q: want %s", first, words())
	case kind == nil:
		return oneProbe{}, errors.New("what to probe is missing")
	}
	// pflag: flags anywhere among the arguments, as GNU tools (and
	// kubectl) take them.
	fs := pflag.NewFlagSet("probe", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", DefaultTimeout, "bound on the whole probe")
	verbose := fs.BoolP("verbose", "v", false, "print detail, also on success")
	builder := kind.OneShot.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return oneProbe{}, err
	}
	pos := fs.Args()
	if *timeout <= 0 {
		return oneProbe{}, fmt.Errorf("--timeout: must be > 0, got %v", *timeout)
	}
	if len(pos) == 0 || kinds.ForWord(pos[0]) != kind {
		return oneProbe{}, fmt.Errorf("unknown probe %q: want %s", first, words())
	}
	if command != nil && kind.Name != "exec" {
		return oneProbe{}, errors.New(`arguments after "--" are only for exec`)
	}
	p, what, err := builder(probe.Args{Pos: pos, Command: command, Timeout: *timeout, Deps: probe.Deps{UserAgent: UserAgent}})
	if err != nil {
		return oneProbe{}, err
	}
	return oneProbe{p: p, what: what, timeout: *timeout, verbose: *verbose}, nil
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

// CheckUsage is the usage of the check command.
func (c CLI) CheckUsage() string {
	return `Usage:
  ` + c.Prog + ` check --config FILE [--role liveness|readiness|startup] [-v]

Runs every check of FILE once (those of --role only, if given), concurrently,
each under its own timeoutSeconds. Exit 0 when all pass, 1 otherwise, 2 on a
bad config. ttl checks are skipped: they need pushed reports.
`
}

// Check runs the check command (`healthbridge check ARGS`) and returns the
// exit code.
func (c CLI) Check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.Prog+" check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("config", "", "config file")
	roleName := fs.String("role", "", "only checks with this role")
	verbose := fs.Bool("v", false, "print every check's result")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *file == "" {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, c.CheckUsage()) // asked for: stdout, exit 0
			return ExitHealthy
		}
		if err == nil && fs.NArg() > 0 {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		} else if err == nil {
			err = errors.New("--config FILE is required")
		}
		fmt.Fprintln(stderr, c.Prog+" check:", flagHint(err))
		fmt.Fprint(stderr, c.CheckUsage())
		return ExitUsage
	}
	var role config.Role
	if *roleName != "" {
		r, err := config.ParseRole(*roleName)
		if err != nil {
			fmt.Fprintln(stderr, c.Prog+" check: --role:", err)
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

// HealthcheckUsage is the usage of the healthcheck command.
func (c CLI) HealthcheckUsage() string {
	return `Usage:
  ` + c.Prog + ` healthcheck [--config FILE] [--endpoint livez|readyz|startupz|healthz] [--timeout 5s] [-v]

Asks the healthbridge that serves FILE for its verdict: reads the file's
listen address (default ` + config.DefaultListen + `), then GETs /ENDPOINT
(default livez) there (on 127.0.0.1 when it listens on every address).
FILE defaults to $` + ConfigEnv + `.
Exit 0 when it answers 200, 1 otherwise, 2 on a bad command line or an
unreadable file. This is the image's HEALTHCHECK: it follows the listen
address of the config the server runs with.
`
}

// Healthcheck runs the healthcheck command: the HEALTHCHECK of an image
// whose entrypoint is `healthbridge serve`, in the manner of `traefik
// healthcheck`. It reads only the config's listen address (leniently: the
// server has validated the file already, and a lean healthbridge-probe must
// read a config that names kinds it leaves out) and probes that server's
// endpoint as `probe http://…` would.
func (c CLI) Healthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.Prog+" healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("config", os.Getenv(ConfigEnv), "config file")
	endpoint := fs.String("endpoint", "livez", "the endpoint to ask")
	timeout := fs.Duration("timeout", DefaultTimeout, "bound on the whole probe")
	verbose := fs.Bool("v", false, "print detail, also on success")
	fail := func(err error) int {
		fmt.Fprintln(stderr, c.Prog+" healthcheck:", flagHint(err))
		fmt.Fprint(stderr, c.HealthcheckUsage())
		return ExitUsage
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, c.HealthcheckUsage()) // asked for: stdout, exit 0
		return ExitHealthy
	case err != nil:
		return fail(err)
	case fs.NArg() > 0:
		return fail(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *file == "":
		return fail(errors.New("--config FILE (or $" + ConfigEnv + ") is required"))
	case *timeout <= 0:
		return fail(fmt.Errorf("--timeout: must be > 0, got %v", *timeout))
	}
	ep := strings.Trim(*endpoint, "/")
	if !slices.Contains([]string{"livez", "readyz", "startupz", "healthz"}, ep) {
		return fail(fmt.Errorf("--endpoint: want livez, readyz, startupz or healthz, got %q", *endpoint))
	}
	addr, err := ListenOf(*file)
	if err != nil {
		fmt.Fprintln(stderr, c.Prog+" healthcheck:", err)
		return ExitUsage
	}
	probeArgs := []string{"http://" + addr + "/" + ep, "--timeout", timeout.String()}
	if *verbose {
		probeArgs = append(probeArgs, "-v")
	}
	return c.Probe(probeArgs, stdout, stderr)
}

// ListenOf reads the config file at path and returns the address a client
// on the same host reaches its public listener at, host:port: the listen
// field (default config.DefaultListen) with an unspecified host (":8642",
// "0.0.0.0:…", "[::]:…") replaced by 127.0.0.1. Only that field is read;
// errors name the file and the field.
func ListenOf(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var c struct {
		Listen string `json:"listen"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	listen := c.Listen
	if listen == "" {
		listen = config.DefaultListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("%s: listen: %v", path, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%s: listen: port %q: a healthcheck needs a fixed port, 1-65535", path, port)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Package oneshot is healthbridge's one-shot client: run one probe (or every
// check of a config) once and exit with Docker's HEALTHCHECK contract, 0
// healthy and 1 unhealthy, so the static binary can be the HEALTHCHECK of an
// image that has no curl, wget or shell. It uses the sidecar's probe
// packages, so the semantics (status ranges, redirects, timeouts, exit
// codes) are the same.
package oneshot

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"healthbridge/health"
	"healthbridge/internal/config"
	"healthbridge/internal/probe"
	execprobe "healthbridge/internal/probe/exec"
	grpcprobe "healthbridge/internal/probe/grpc"
	httpprobe "healthbridge/internal/probe/http"
	"healthbridge/internal/probe/kinds"
	"healthbridge/internal/probe/rundir"
	"healthbridge/internal/probe/tcp"
	"healthbridge/internal/tlsclient"
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

// UserAgent is sent by the HTTP probe; set by main to include the version.
var UserAgent = "healthbridge"

const probeUsage = `Usage:
  healthbridge probe http(s)://HOST:PORT/PATH [--header K:V]... [--timeout 5s] [--insecure] [--ca FILE] [--server-name N] [--cert FILE --key FILE] [-v]
  healthbridge probe tcp HOST:PORT [--timeout 5s] [-v]
  healthbridge probe grpc HOST:PORT [--service NAME] [--tls] [--insecure] [--ca FILE] [--server-name N] [--cert FILE --key FILE] [-v]
  healthbridge probe rundir PATH --unit UNIT [--no-pid] [--max-age 30s] [-v]
  healthbridge probe exec [--timeout 5s] [-v] -- COMMAND [ARG]...

Exit 0 healthy, 1 unhealthy (Docker's HEALTHCHECK contract), 2 usage error.
Quiet on success; one line of reason on stderr on failure; -v for detail.
`

// parseInterleaved parses flags that may come before or after positional
// arguments ("probe URL --timeout 5s"). The caller has already split off
// anything after "--".
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

type headerFlag struct{ h http.Header }

func (f *headerFlag) String() string { return "" }
func (f *headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want Name:Value, got %q", s)
	}
	f.h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	return nil
}

// flagHint adds a hint to a flag error where the fix is not obvious: a
// duration without a unit ("--timeout 5") needs one ("5s").
func flagHint(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "invalid value") && strings.Contains(msg, "parse error") {
		msg += ` (a duration needs a unit: write "5s", "500ms" or "1m")`
	}
	return msg
}

// Probe runs `healthbridge probe ARGS` and returns the exit code.
func Probe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthbridge probe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", DefaultTimeout, "bound on the whole probe")
	verbose := fs.Bool("v", false, "print detail, also on success")
	insecure := fs.Bool("insecure", false, "https, grpc: do not verify the server's certificate")
	headers := &headerFlag{h: http.Header{}}
	fs.Var(headers, "header", "http: request header Name:Value (repeatable)")
	unit := fs.String("unit", "", "rundir: the unit name")
	noPid := fs.Bool("no-pid", false, "rundir: do not check that the pid is a live process")
	maxAge := fs.Duration("max-age", 0, "rundir: fail a state older than this (0: off)")
	service := fs.String("service", "", "grpc: the service name sent in HealthCheckRequest")
	useTLS := fs.Bool("tls", false, "grpc: dial with TLS (implied by --insecure, --ca and --cert)")
	caFile := fs.String("ca", "", "https, grpc: PEM file of CAs to verify the server with (default: the system's)")
	serverName := fs.String("server-name", "", "https, grpc: name to verify in the server's certificate")
	certFile := fs.String("cert", "", "https, grpc: client certificate (PEM), with --key")
	keyFile := fs.String("key", "", "https, grpc: client key (PEM), with --cert")
	tlsFlags := func() (*tls.Config, error) {
		return tlsclient.Config(&config.TLS{InsecureSkipVerify: *insecure, CAFile: *caFile, ServerName: *serverName,
			CertFile: *certFile, KeyFile: *keyFile}, "tls")
	}
	usage := func(err error) int {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, probeUsage) // asked for: stdout, exit 0
			return ExitHealthy
		}
		if err != nil {
			fmt.Fprintln(stderr, "healthbridge probe:", flagHint(err))
		}
		fmt.Fprint(stderr, probeUsage)
		return ExitUsage
	}

	// Everything after "--" is the exec command, untouched by flag parsing.
	var cmdArgs []string
	for i, a := range args {
		if a == "--" {
			args, cmdArgs = args[:i], args[i+1:]
			break
		}
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usage(err)
	}
	if *timeout <= 0 {
		return usage(fmt.Errorf("--timeout: must be > 0, got %v", *timeout))
	}
	if len(pos) == 0 {
		return usage(errors.New("what to probe is missing"))
	}
	var (
		p    probe.Prober
		what string
	)
	switch kind := pos[0]; {
	case strings.HasPrefix(kind, "http://") || strings.HasPrefix(kind, "https://"):
		if len(pos) != 1 {
			return usage(fmt.Errorf("unexpected argument %q", pos[1]))
		}
		u, err := url.Parse(kind)
		if err != nil || u.Host == "" {
			return usage(fmt.Errorf("invalid URL %q", kind))
		}
		// Unlike the sidecar's httpGet (the kubelet's rule), the one-shot
		// client verifies certificates unless told --insecure, as curl.
		tc, err := tlsFlags()
		if err != nil {
			return usage(err)
		}
		p, what = httpprobe.NewURL(u, httpprobe.Options{Header: headers.h, UserAgent: UserAgent, TLS: tc}), u.String()
	case kind == "tcp":
		if len(pos) != 2 {
			return usage(errors.New("tcp: want exactly one HOST:PORT"))
		}
		p, what = tcp.NewAddr(pos[1]), pos[1]
	case kind == "rundir":
		if len(pos) != 2 || *unit == "" {
			return usage(errors.New("rundir: want PATH and --unit UNIT"))
		}
		u, err := health.NewUnit(pos[1], *unit)
		if err != nil {
			return usage(fmt.Errorf("--unit: %w", err))
		}
		p, what = rundir.NewDir(u.Dir(), !*noPid, *maxAge), u.Dir()
	case kind == "exec":
		if len(pos) != 1 || len(cmdArgs) == 0 {
			return usage(errors.New("exec: want -- COMMAND [ARG]..."))
		}
		ep, err := execprobe.NewArgv(cmdArgs, *timeout, 0)
		if err != nil {
			return usage(err)
		}
		p, what = ep, strings.Join(cmdArgs, " ")
	case kind == "grpc":
		if len(pos) != 2 {
			return usage(errors.New("grpc: want exactly one HOST:PORT"))
		}
		var tc *tls.Config
		if *useTLS || *insecure || *caFile != "" || *certFile != "" {
			c, err := tlsFlags()
			if err != nil {
				return usage(err)
			}
			tc = c
		}
		p, what = grpcprobe.NewAddr(pos[1], *service, tc, UserAgent), pos[1]
	default:
		return usage(fmt.Errorf("unknown probe %q: want an http(s) URL, tcp, grpc, rundir or exec", kind))
	}
	if len(cmdArgs) > 0 && pos[0] != "exec" {
		return usage(errors.New(`arguments after "--" are only for exec`))
	}
	r := runOne(p, *timeout)
	return report(stdout, stderr, what, r, *verbose)
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
	cfg, err := config.Load(*file)
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
		if (role != config.RoleUnknown && !c.HasRole(role)) || c.Kind() == config.KindTTL {
			continue
		}
		p, err := kinds.New(c, probe.Deps{UserAgent: UserAgent, Name: c.Name})
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

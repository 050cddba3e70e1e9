// Command healthbridge is a health-check sidecar and agent: it runs exec,
// TCP and HTTP probes on a schedule, with Kubernetes' and Docker's
// semantics, and serves the results over HTTP. See the README.
//
// main only parses the command line and wires packages together; the logic
// lives under internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/healthbridge/healthbridge/internal/app"
	"github.com/healthbridge/healthbridge/internal/compat"
	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/idlegc"
	"github.com/healthbridge/healthbridge/internal/oneshot"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/proc"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // runtime failure
	exitUsage = 2 // bad command line or config: nothing was started
)

func main() {
	_, _ = idlegc.SetMemoryLimit() // GOMEMLIMIT from the container's limit; no limit to read changes nothing
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `healthbridge: a health-check sidecar with Kubernetes and Docker probe semantics.

Usage:
  healthbridge [flags] --config FILE       run the checks in FILE and serve their results
  healthbridge serve [flags] --config FILE (the same)
  healthbridge validate FILE               check a config file: exit 0, or print every error and exit 2
  healthbridge probe KIND …                probe once: exit 0 healthy, 1 unhealthy (a HEALTHCHECK command);
                                           KIND is one of: PROBE_WORDS
  healthbridge check --config FILE [--role R]  run every check of FILE once
  healthbridge healthcheck [--config FILE] ask the healthbridge serving FILE for /livez (the image's HEALTHCHECK)
  healthbridge run [--config FILE] -- CMD …  run CMD as init (tini-like), with the checks when configured
  healthbridge wait [flags] TARGET… [-- CMD …]  wait until tcp://, http(s)://, grpc://… targets pass, then exec CMD
  healthbridge version                     print the version
  healthbridge -cmd "ls /tmp/x" [-url /healthz] [-period 2s] [-latency 30s] [-port 8080] [-quiet] [-output]
                                           exechealthz drop-in mode

Flags:
`

// globalFlags are shared by serve and the exechealthz mode.
type globalFlags struct {
	config    string
	logFormat string
	logLevel  string
	reap      bool
	kubecfg   string
	listen    string
}

func (g *globalFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.config, "config", os.Getenv(oneshot.ConfigEnv), "config file (YAML or JSON); default $"+oneshot.ConfigEnv)
	fs.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&g.reap, "reap", false, "reap orphaned processes as a child subreaper (automatic when PID 1)")
	fs.StringVar(&g.listen, "listen", "", "override the listen address (config, exechealthz -port, or :3000 in http-healthcheck-sidecar mode)")
	fs.StringVar(&g.kubecfg, "kubeconfig", "", "kubeconfig for kubernetesPod checks (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return serve(args[1:], stdout, stderr)
		case "validate":
			return validate(args[1:], stdout, stderr)
		case "run":
			return runChild(args[1:], stdout, stderr)
		case "probe":
			return oneshot.Full.Probe(args[1:], stdout, stderr)
		case "check":
			return oneshot.Full.Check(args[1:], stdout, stderr)
		case "healthcheck":
			return oneshot.Full.Healthcheck(args[1:], stdout, stderr)
		case "wait":
			return oneshot.Full.Wait(args[1:], stdout, stderr)
		case "version", "--version", "-version":
			fmt.Fprintln(stdout, "healthbridge", probe.BuildInfo())
			return exitOK
		case "help", "--help", "-help", "-h":
			// Asked for: the usage goes to stdout and the exit is 0.
			fs := newFlagSet("healthbridge")
			new(globalFlags).register(fs)
			printUsage(stdout, fs)
			return exitOK
		}
	}
	if ex := compat.ExechealthzFlags(args); len(ex) > 0 {
		if err := exechealthzMix(args, ex); err != nil {
			fmt.Fprintln(stderr, "healthbridge:", err)
			return exitUsage
		}
		return exechealthz(args, stdout, stderr)
	}
	return serve(args, stdout, stderr)
}

// nativeOnlyFlags are healthbridge's flags that have no meaning in the
// exechealthz mode: a command line with both is ambiguous.
var nativeOnlyFlags = []string{"config", "kubeconfig"}

// exechealthzMix reports why args, which hold the exechealthz flags ex,
// are not exechealthz's own command line: the mode needs -cmd (a stray
// -port or -period alone is not exechealthz), and no native-only flag may
// be mixed in. A mix must never silently drop a --config and serve an
// always-healthy default command.
func exechealthzMix(args, ex []string) error {
	dashed := func(names []string) string {
		var s []string
		for _, n := range names {
			s = append(s, "-"+n)
		}
		return strings.Join(s, ", ")
	}
	var native []string
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && slices.Contains(nativeOnlyFlags, name) && !slices.Contains(native, name) {
			native = append(native, name)
		}
	}
	if len(native) > 0 {
		return fmt.Errorf("%s cannot be combined with exechealthz's flags (%s): use a config file alone, or exechealthz's command line (-cmd ...) alone", dashed(native), dashed(ex))
	}
	if !slices.Contains(ex, "cmd") {
		return fmt.Errorf("%s: exechealthz flags, but no -cmd: the exechealthz mode needs -cmd (see --help)", dashed(ex))
	}
	return nil
}

// newFlagSet returns a flag set that prints nothing by itself: parse
// reports errors and help.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// printUsage writes the usage text and fs's flags to w. The one-shot
// kinds come from the kind list.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	var words []string
	for _, k := range kinds.List {
		if k.OneShot != nil {
			words = append(words, k.OneShot.Words...)
		}
	}
	fmt.Fprint(w, strings.Replace(usage, "PROBE_WORDS", strings.Join(words, " "), 1))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// parse parses args into fs. It returns -1 to go on, or the exit code:
// exitOK after printing the usage to stdout for -h/--help (asked for),
// exitUsage after printing the error to stderr.
func parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return -1
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs)
		return exitOK
	default:
		fmt.Fprintf(stderr, "%s: %v (see --help)\n", fs.Name(), err)
		return exitUsage
	}
}

func serve(args []string, stdout, stderr io.Writer) int {
	var g globalFlags
	fs := newFlagSet("healthbridge")
	g.register(fs)
	if code := parse(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "healthbridge: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if g.config == "" {
		if compat.IsHTTPHealthcheck(os.LookupEnv) {
			return httpHealthcheck(g, stderr)
		}
		fmt.Fprintln(stderr, "healthbridge: --config FILE is required (or exechealthz flags such as -cmd, or the HTTP_HEALTHCHECK_SIDECAR_* variables); see --help")
		return exitUsage
	}
	log, err := newLogger(g.logFormat, g.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "healthbridge:", err)
		return exitUsage
	}
	cfg, err := kinds.Load(g.config)
	if err != nil {
		printErrors(stderr, g.config, err)
		return exitUsage
	}
	return runSidecar(cfg, app.Options{Logger: log, ConfigFile: g.config}, g, stderr)
}

// httpHealthcheck is the drop-in mode for http-healthcheck-sidecar: its
// environment variables, its port and path.
func httpHealthcheck(g globalFlags, stderr io.Writer) int {
	log, err := newLogger(g.logFormat, g.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "healthbridge:", err)
		return exitUsage
	}
	h, err := compat.ParseHTTPHealthcheck(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "healthbridge:", err)
		return exitUsage
	}
	listen := compat.HTTPHealthcheckListen
	if g.listen != "" {
		listen = g.listen
	}
	if h.Override != nil {
		ctx, _ := signalContext(log, nil)
		if err := compat.ServeOverride(ctx, listen, *h.Override, log); err != nil {
			fmt.Fprintln(stderr, "healthbridge:", err)
			return exitError
		}
		return exitOK
	}
	cfg := h.Config(listen)
	g.listen = ""
	return runSidecar(cfg, app.Options{
		Logger: log,
		Wrap:   h.Wrap,
	}, g, stderr)
}

func exechealthz(args []string, stdout, stderr io.Writer) int {
	var g globalFlags
	e, err := compat.ParseExechealthz(args, stdout, g.register)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK // the flag set printed its usage to stdout
		}
		fmt.Fprintln(stderr, "healthbridge:", err)
		return exitUsage
	}
	if e.Quiet {
		g.logLevel = "error"
	}
	log, err := newLogger(g.logFormat, g.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "healthbridge:", err)
		return exitUsage
	}
	if err := e.SanityCheck(); err != nil {
		fmt.Fprintln(stderr, "healthbridge:", err)
		return exitUsage
	}
	cfg := e.Config()
	if err := cfg.Validate(kinds.Rules); err != nil {
		printErrors(stderr, "exechealthz flags", err)
		return exitUsage
	}
	return runSidecar(cfg, app.Options{
		Logger: log,
		Wrap:   e.Wrap,
	}, g, stderr)
}

func runSidecar(cfg *config.Config, opts app.Options, g globalFlags, stderr io.Writer) int {
	reap, err := proc.ShouldReap(g.reap)
	if err != nil {
		fmt.Fprintln(stderr, "healthbridge: --reap:", err)
		return exitUsage
	}
	opts.Reap = reap
	opts.Kubeconfig = g.kubecfg
	if g.listen != "" {
		listen := g.listen
		opts.Adjust = func(c *config.Config) { c.Listen = listen }
		opts.Adjust(cfg)
	}
	var reload chan struct{}
	if opts.ConfigFile != "" {
		reload = make(chan struct{}, 1)
		opts.Reload = reload
	}
	// Signals are caught before anything listens: a SIGHUP (or SIGTERM)
	// that arrives once the port accepts must never meet the default
	// action, which ends the process.
	ctx, hurry := signalContext(opts.Logger, reload)
	sc, err := app.Build(cfg, opts)
	if err != nil {
		printErrors(stderr, "start-up", err)
		return exitUsage
	}
	go idlegc.Run(ctx, opts.Logger)
	if err := sc.Run(ctx, hurry); err != nil {
		fmt.Fprintln(stderr, "healthbridge:", err)
		return exitError
	}
	return exitOK
}

// signalContext returns a context cancelled by the first SIGTERM or SIGINT,
// and a channel closed by the second (skip the shutdown delay). SIGHUP,
// which systemd's ExecReload, supervisors and habit send, reloads the
// config file: it is passed on to reload (without blocking: a reload
// already asked for covers it). With no file to reload (reload nil, the
// drop-in modes) it is logged; it never ends the process, SIGHUP's
// default action.
func signalContext(log *slog.Logger, reload chan<- struct{}) (context.Context, <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	hurry := make(chan struct{})
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if reload == nil {
				log.Warn("received SIGHUP: there is no config file to reload in this mode (still running)")
				continue
			}
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		<-sig
		cancel()
		<-sig
		close(hurry)
	}()
	return ctx, hurry
}

const validateUsage = `Usage: healthbridge validate FILE

Checks the config file FILE (YAML or JSON) as healthbridge would load it:
strict fields, types and every rule. Exit 0 and "FILE: ok (N checks)", or
every problem on its own line, prefixed with the file and the field's path,
and exit 2.
`

func validate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("healthbridge validate")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, validateUsage)
			return exitOK
		}
		fmt.Fprintf(stderr, "healthbridge validate: %v (see --help)\n", err)
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: healthbridge validate FILE")
		return exitUsage
	}
	path := fs.Arg(0)
	cfg, err := kinds.Load(path)
	if err != nil {
		printErrors(stderr, path, err)
		return exitUsage
	}
	noun := "checks"
	if len(cfg.Checks) == 1 {
		noun = "check"
	}
	fmt.Fprintf(stdout, "%s: ok (%d %s)\n", path, len(cfg.Checks), noun)
	return exitOK
}

// printErrors prints each line of a (joined) error prefixed with where,
// and a hint when the error is a file healthbridge may not read: its image
// runs as uid 65532, and a config mounted readable only by root fails.
func printErrors(w io.Writer, where string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "%s: %s\n", where, line)
	}
	if errors.Is(err, fs.ErrPermission) {
		fmt.Fprintf(w, "%s: hint: healthbridge runs as uid %d, gid %d: make the file readable by it (a Kubernetes ConfigMap or Secret volume: defaultMode: 0444, or the pod's fsGroup)\n",
			where, os.Getuid(), os.Getgid())
	}
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q: must be debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	default:
		return nil, fmt.Errorf("--log-format: %q: must be text or json", format)
	}
}

// Package app wires a validated config into a running sidecar: probers,
// state store, scheduler, HTTP server, orphan reaper and graceful shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/notify"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/proc"
	"github.com/healthbridge/healthbridge/internal/scheduler"
	"github.com/healthbridge/healthbridge/internal/server"
	"github.com/healthbridge/healthbridge/internal/state"
)

// shutdownTimeout bounds http.Server.Shutdown after the shutdown delay.
const shutdownTimeout = 2 * time.Second

// Options adjust a Sidecar beyond its config.
type Options struct {
	// Logger receives all logs; nil discards.
	Logger *slog.Logger
	// Wrap, when not nil, wraps the public handler: a drop-in mode's
	// middleware (compat), which answers its own paths from the store and
	// hands the rest to core, or not.
	Wrap func(core http.Handler, store *state.Store) http.Handler
	// Reap reaps orphaned processes (set when healthbridge is PID 1 or a
	// subreaper; see proc.ShouldReap).
	Reap bool
	// Kubeconfig is --kubeconfig, for kubernetesPod checks.
	Kubeconfig string
	// ChildPid is `healthbridge run`'s supervised child's pid (0 while
	// none runs); nil outside run mode. See probe.Deps.ChildPid.
	ChildPid func() int
	// ConfigFile is the file the config came from, which a reload reads
	// again; "" when there is none (the drop-in modes): no reload.
	ConfigFile string
	// Adjust, when not nil, is applied to every config loaded from
	// ConfigFile by a reload, as to the first (the --listen override).
	Adjust func(*config.Config)
	// Reload receives a value for each reload request from outside
	// (SIGHUP); nil: none.
	Reload <-chan struct{}
}

// Sidecar is a built, not yet running healthbridge. Build it with Build,
// run it once with Run.
type Sidecar struct {
	cfg   *config.Config
	log   *slog.Logger
	store *state.Store
	// mu guards sched and bg: `healthbridge run` replaces the scheduler
	// when it restarts its child (PauseChecks, ResumeChecks).
	mu     sync.Mutex
	sched  *scheduler.Scheduler
	bg     context.Context // Run's background context, for a new scheduler
	checks []scheduler.Check
	srv    *http.Server
	ln     net.Listener
	reap   bool

	adminSrv *http.Server // nil without push checks
	adminLn  net.Listener
	closers  []io.Closer   // probers holding resources (watches)
	agent    *server.Agent // nil without agent config
	agentLn  net.Listener
	notifier *notify.Notifier // nil without notify webhooks
	grpcSrv  grpcServing      // nil without grpcListen
	grpcLn   net.Listener

	// reloadMu serialises reloads; reloaded is what the reload metrics
	// say. kubeconfig and childPid build new checks' probers.
	reloadMu   sync.Mutex
	reloaded   reloadStatus
	kubeconfig string
	childPid   func() int
	opts       Options
	loadedHash [32]byte // of the config file as last loaded or refused (reloadMu)
}

// Build constructs every prober (so a bad exec command is a start-up
// error), the store and the scheduler, and binds the listener. On error
// nothing is left running or bound. Errors name the offending field
// ("checks[2].exec.command[0]: ...").
func Build(cfg *config.Config, opts Options) (*Sidecar, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The sidecar exists from the start: push kinds' "run now" callbacks
	// reach its current scheduler through it.
	sc := &Sidecar{}
	var (
		errs    []error
		probers []probe.Prober
		specs   []state.Spec
		closers []io.Closer
		admin   *http.ServeMux // nil without push kinds
	)
	// Push kinds are set up once for all their checks: each gives the
	// handler mounted on adminListen and the constructor its checks use.
	pushNew := map[*probe.Kind]func(*config.Check, probe.Deps) (probe.Prober, error){}
	for _, k := range kinds.List {
		if k.Push == nil {
			continue
		}
		var of []*config.Check
		for i := range cfg.Checks {
			if kinds.Of(&cfg.Checks[i]) == k {
				of = append(of, &cfg.Checks[i])
			}
		}
		if len(of) == 0 {
			continue
		}
		pk := k.Push(of, func(name string) { sc.runNow(name) })
		if admin == nil {
			admin = http.NewServeMux()
		}
		pk.Register(admin)
		pushNew[k] = pk.New
	}
	for i := range cfg.Checks {
		c := &cfg.Checks[i]
		k := kinds.Of(c)
		if k == nil {
			errs = append(errs, fmt.Errorf("checks[%d]: no single probe kind", i))
			continue
		}
		deps := probe.Deps{UserAgent: probe.UserAgent(), Kubeconfig: opts.Kubeconfig, ChildPid: opts.ChildPid}
		build := k.New
		if pn := pushNew[k]; pn != nil {
			build = pn
		}
		p, err := build(c, deps)
		if err != nil {
			errs = append(errs, fmt.Errorf("checks[%d].%w", i, err))
			continue
		}
		if cl, ok := p.(io.Closer); ok {
			closers = append(closers, cl)
		}
		probers = append(probers, p)
		specs = append(specs, kinds.Spec(c, k))
	}
	if len(errs) > 0 {
		closeAll(closers)
		return nil, errors.Join(errs...)
	}
	store := state.NewStore(specs, time.Now())
	var checks []scheduler.Check
	for i, slot := range store.Slots() {
		checks = append(checks, scheduler.Check{Slot: slot, Prober: probers[i], Inflight: new(scheduler.Inflight)})
	}

	// The check metrics are written by the /metrics handler from the
	// snapshot; these are the rest.
	sc.kubeconfig, sc.childPid, sc.opts = opts.Kubeconfig, opts.ChildPid, opts
	sc.reloaded.ok.Store(true)
	sc.reloaded.last.Store(time.Now().Unix())
	metrics := server.MetricsWriters{runtimeMetrics(), &sc.reloaded}
	if len(cfg.Notify) > 0 {
		nt, err := notify.New(cfg, store, log)
		if err != nil {
			closeAll(closers)
			return nil, err
		}
		metrics = append(metrics, nt)
		sc.notifier = nt
	}
	sopts := server.Options{
		FailureStatusCode: cfg.FailureStatusCode,
		ExposeOutput:      cfg.ExposeOutput,
		Metrics:           metrics,
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		closeAll(closers)
		return nil, fmt.Errorf("listen: %w", err)
	}
	h := server.New(store, sopts)
	var handler http.Handler = h
	if opts.Wrap != nil {
		handler = opts.Wrap(handler, store)
	}
	sc.closers, sc.cfg, sc.log, sc.store, sc.checks = closers, cfg, log, store, checks
	sc.sched, sc.ln, sc.reap = scheduler.New(checks, log), ln, opts.Reap
	sc.srv = server.NewHTTPServer(handler, log)
	sc.srv.RegisterOnShutdown(h.CloseStreams)
	if cfg.ReloadEndpoint {
		if admin == nil {
			admin = http.NewServeMux()
		}
		admin.Handle("POST /-/reload", http.HandlerFunc(sc.serveReload))
		admin.Handle("PUT /-/reload", http.HandlerFunc(sc.serveReload))
	}
	if admin != nil {
		aln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			_ = sc.Close()
			return nil, fmt.Errorf("adminListen: %w", err)
		}
		sc.adminLn = aln
		sc.adminSrv = server.NewHTTPServer(server.CanonicalPaths(admin), log)
	}
	if cfg.GRPCListen != "" {
		srv, err := newGRPC(cfg, store)
		if err != nil {
			_ = sc.Close()
			return nil, err
		}
		gln, err := net.Listen("tcp", cfg.GRPCListen)
		if err != nil {
			_ = sc.Close()
			return nil, fmt.Errorf("grpcListen: %w", err)
		}
		sc.grpcLn, sc.grpcSrv = gln, srv
	}
	if a := cfg.Agent; a != nil {
		agln, err := net.Listen("tcp", a.Listen)
		if err != nil {
			_ = sc.Close()
			return nil, fmt.Errorf("agent.listen: %w", err)
		}
		sc.agentLn = agln
		sc.agent = server.NewAgent(store, state.ScopeForRole(a.Role), cfg.ExposeOutput, a.WarnWeightPercent)
	}
	return sc, nil
}

// Run serves and probes until ctx is done (the signal), then shuts down
// gracefully: readiness keeps passing for drainDelaySeconds (default 0),
// then fails, the server keeps answering until shutdownDelaySeconds have
// passed since the signal or until hurry is closed (a second signal), then the
// server shuts down and every running probe is cancelled (its process group
// killed). It returns nil after a clean shutdown, or the server's error.
func (s *Sidecar) Run(ctx context.Context, hurry <-chan struct{}) error {
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	if s.reap {
		go proc.Reap(bg, s.log)
	}
	s.mu.Lock()
	s.bg = bg
	s.sched.Start(bg)
	s.mu.Unlock()
	if s.notifier != nil {
		notified := make(chan struct{})
		go func() { s.notifier.Run(bg); close(notified) }()
		defer func() { stopBG(); <-notified }()
	}
	// One slot per server that may send (public, admin, agent, gRPC), so
	// none blocks after Run has stopped reading.
	serveErr := make(chan error, 4)
	go func() { serveErr <- s.srv.Serve(s.ln) }()
	if s.adminSrv != nil {
		go func() { serveErr <- s.adminSrv.Serve(s.adminLn) }()
		s.log.Info("serving admin", "addr", s.adminLn.Addr().String())
	}
	if s.grpcSrv != nil {
		go func() { serveErr <- s.grpcSrv.Serve(s.grpcLn) }()
		s.log.Info("serving grpc health", "addr", s.grpcLn.Addr().String())
	}
	if s.agent != nil {
		go func() { serveErr <- s.agent.Serve(s.agentLn) }()
		s.log.Info("serving haproxy agent", "addr", s.agentLn.Addr().String(), "role", s.cfg.Agent.Role.String())
	}
	s.log.Info("serving", "addr", s.ln.Addr().String(), "checks", len(s.config().Checks))
	if s.opts.ConfigFile != "" {
		s.rememberFile()
		go s.reloadLoop(bg)
	}

	select {
	case err := <-serveErr:
		s.stopChecks()
		closeAll(s.currentClosers())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// drainDelaySeconds with readiness still passing, then the rest of
	// shutdownDelaySeconds with readiness failing; a second signal (hurry)
	// skips what is left of both.
	drain, delay := s.config().DrainDelay(), s.config().ShutdownDelay()
	if drain > 0 {
		s.log.Info("shutting down: readiness passes for the drain delay", "drain_delay", drain)
	}
	hurried, err := s.wait(drain, hurry, serveErr)
	if err != nil {
		return err
	}
	s.store.SetShuttingDown()
	s.log.Info("shutting down: readiness now fails", "delay", delay-drain)
	if !hurried {
		if _, err := s.wait(delay-drain, hurry, serveErr); err != nil {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = s.srv.Shutdown(sctx)
	if s.adminSrv != nil {
		err = errors.Join(err, s.adminSrv.Shutdown(sctx))
	}
	if s.agent != nil {
		err = errors.Join(err, s.agent.Close())
	}
	if s.grpcSrv != nil {
		s.grpcSrv.Stop(sctx)
	}
	s.stopChecks()
	closeAll(s.currentClosers())
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// runNow asks the current scheduler to run the named check at once.
func (s *Sidecar) runNow(name string) {
	s.mu.Lock()
	sched := s.sched
	s.mu.Unlock()
	if sched != nil {
		sched.RunNow(name)
	}
}

// stopChecks stops the current scheduler and waits for it.
func (s *Sidecar) stopChecks() {
	s.mu.Lock()
	sched := s.sched
	s.mu.Unlock()
	sched.Stop()
}

// PauseChecks stops probing and puts every check back to starting at now,
// as when the kubelet restarts a container: readiness fails (starting
// fails it), liveness passes, until ResumeChecks. `healthbridge run` calls
// it when it restarts its child. Safe while Run runs.
func (s *Sidecar) PauseChecks(now time.Time) {
	s.stopChecks()
	s.store.Reset(now)
}

// ResumeChecks probes again with a fresh schedule counted from now
// (initialDelaySeconds, the start period, the startup gate), as for a
// container the kubelet just started. Call it after PauseChecks, while Run
// runs.
func (s *Sidecar) ResumeChecks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bg == nil || s.bg.Err() != nil {
		return // Run has not started, or is stopping
	}
	s.sched = scheduler.New(s.checks, s.log)
	s.sched.Start(s.bg)
}

// Store is the sidecar's state store (`healthbridge run` publishes its
// child's state there).
func (s *Sidecar) Store() *state.Store { return s.store }

// ShutdownDelay is how long Run keeps serving after its context ends.
func (s *Sidecar) ShutdownDelay() time.Duration { return s.config().ShutdownDelay() }

// config is the running config (a reload replaces it).
func (s *Sidecar) config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// currentClosers is the running checks' probers that hold resources.
func (s *Sidecar) currentClosers() []io.Closer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closers
}

// wait waits d (nothing when d <= 0), or until hurry is closed (then it
// reports true), or until a server fails (then it stops the checks and
// returns the error).
func (s *Sidecar) wait(d time.Duration, hurry <-chan struct{}, serveErr <-chan error) (bool, error) {
	if d <= 0 {
		return false, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false, nil
	case <-hurry:
		return true, nil
	case err := <-serveErr:
		s.stopChecks()
		closeAll(s.currentClosers())
		return false, fmt.Errorf("serve: %w", err)
	}
}

func closeAll(cs []io.Closer) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// Close releases the listeners and probers of a Sidecar that will not Run.
func (s *Sidecar) Close() error {
	closeAll(s.closers)
	err := s.ln.Close()
	for _, ln := range []net.Listener{s.adminLn, s.agentLn, s.grpcLn} {
		if ln != nil {
			err = errors.Join(err, ln.Close())
		}
	}
	return err
}

// grpcServing is grpcListen's server (grpc.go; the lean build has none and
// refuses grpcListen, grpc_lean.go).
type grpcServing interface {
	// Serve serves on ln until Stop; as grpc.Server.Serve.
	Serve(ln net.Listener) error
	// Stop ends every Watch stream and stops, gracefully unless ctx ends
	// first.
	Stop(ctx context.Context)
}

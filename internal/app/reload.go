package app

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/scheduler"
	"github.com/healthbridge/healthbridge/internal/state"
)

// reloadable lists the top-level config fields a reload may change; any
// other difference needs a restart (listeners, TLS files, the agent,
// webhooks, `healthbridge run`'s policy).
var reloadable = []string{"checks", "shutdownDelaySeconds", "drainDelaySeconds", "watchConfig"}

// ReloadResult says what a successful reload changed, by check name.
type ReloadResult struct {
	Kept, Added, Changed, Removed []string
}

// reloadStatus is what the reload metrics report.
type reloadStatus struct {
	ok   atomic.Bool  // the last reload succeeded (true before any)
	last atomic.Int64 // Unix seconds of the last successful load (start-up counts)
}

// WriteMetrics writes healthbridge_config_last_reload_successful and
// healthbridge_config_last_reload_success_timestamp_seconds, named as
// Prometheus names its own.
func (r *reloadStatus) WriteMetrics(w io.Writer) error {
	ok := 0
	if r.ok.Load() {
		ok = 1
	}
	_, err := fmt.Fprintf(w, "# HELP healthbridge_config_last_reload_successful Whether the last configuration reload attempt was successful.\n"+
		"# TYPE healthbridge_config_last_reload_successful gauge\n"+
		"healthbridge_config_last_reload_successful %d\n"+
		"# HELP healthbridge_config_last_reload_success_timestamp_seconds Timestamp of the last successful configuration load (start-up or reload).\n"+
		"# TYPE healthbridge_config_last_reload_success_timestamp_seconds gauge\n"+
		"healthbridge_config_last_reload_success_timestamp_seconds %d\n", ok, r.last.Load())
	return err
}

// Reload applies next, a config already parsed and validated (kinds.Load),
// while the sidecar runs. A check whose definition is unchanged (the same
// name and the same fields, defaults applied) keeps its state, streaks,
// history, timeline, schedule and any run in flight, with no event; a
// changed check starts over as starting, a new one starts, a removed one
// goes away with its metrics series, each with one event of reason
// "reload". No running probe is interrupted and no check ever runs twice
// at once (scheduler.Update); readiness does not fail because of the
// reload itself, only because new checks are starting.
//
// It refuses, keeping the running config, a next that changes a field that
// needs a restart (every top-level field but checks, shutdownDelaySeconds,
// drainDelaySeconds and watchConfig), adds, removes or changes a push
// (ttl) check, or whose new checks cannot be built (an exec binary not on
// $PATH). The error then names every offending field, one per line.
func (s *Sidecar) Reload(next *config.Config) (ReloadResult, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	res, err := s.reload(next)
	s.reloaded.ok.Store(err == nil)
	if err == nil {
		s.reloaded.last.Store(time.Now().Unix())
	}
	return res, err
}

func (s *Sidecar) reload(next *config.Config) (ReloadResult, error) {
	var res ReloadResult
	s.mu.Lock()
	cur, curChecks := s.cfg, s.checks
	s.mu.Unlock()
	if errs := needsRestart(cur, next); len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	type old struct {
		def   string
		check scheduler.Check
		push  bool
	}
	olds := map[string]old{}
	for i := range cur.Checks {
		c := &cur.Checks[i]
		olds[c.Name] = old{def: definition(c), check: curChecks[i], push: kinds.Of(c).Push != nil}
	}
	var (
		errs    []error
		specs   = make([]state.Spec, len(next.Checks))
		keep    = make([]*state.Slot, len(next.Checks))
		probers = make([]probe.Prober, len(next.Checks))
		built   []probe.Prober
		seen    = map[string]bool{}
	)
	for j := range next.Checks {
		c := &next.Checks[j]
		k := kinds.Of(c)
		seen[c.Name] = true
		o, had := olds[c.Name]
		switch {
		case had && o.def == definition(c):
			keep[j] = o.check.Slot
			res.Kept = append(res.Kept, c.Name)
			continue
		case k.Push != nil || (had && o.push):
			errs = append(errs, config.Errorf(fmt.Sprintf("checks[%d].%s", j, k.Name), "adding or changing a push check (%q) needs a restart", c.Name))
			continue
		}
		p, err := k.New(c, probe.Deps{UserAgent: probe.UserAgent(), Kubeconfig: s.kubeconfig, ChildPid: s.childPid})
		if err != nil {
			errs = append(errs, fmt.Errorf("checks[%d].%w", j, err))
			continue
		}
		built = append(built, p)
		probers[j], specs[j] = p, kinds.Spec(c, k)
		if had {
			res.Changed = append(res.Changed, c.Name)
		} else {
			res.Added = append(res.Added, c.Name)
		}
	}
	for name, o := range olds {
		if !seen[name] {
			if o.push {
				errs = append(errs, config.Errorf("checks", "removing the push check %q needs a restart", name))
			}
			res.Removed = append(res.Removed, name)
		}
	}
	if len(errs) > 0 {
		closeProbers(built)
		return ReloadResult{}, errors.Join(errs...)
	}
	slices.Sort(res.Removed)

	// Swap: the store first (new checks appear as starting, removed ones
	// vanish), then the scheduler, which from then on runs the new set.
	s.mu.Lock()
	defer s.mu.Unlock()
	slots := s.store.Replace(specs, keep, time.Now())
	checks := make([]scheduler.Check, len(next.Checks))
	for j, sl := range slots {
		if keep[j] != nil {
			checks[j] = olds[next.Checks[j].Name].check
			continue
		}
		inflight := new(scheduler.Inflight)
		if o, ok := olds[next.Checks[j].Name]; ok {
			inflight = o.check.Inflight // a stuck run of the old definition still counts
		}
		checks[j] = scheduler.Check{Slot: sl, Prober: probers[j], Inflight: inflight}
	}
	if s.sched != nil {
		s.sched.Update(checks) // false while `healthbridge run` has paused the checks: ResumeChecks starts them
	}
	// Probers of changed and removed checks that hold resources (a watch)
	// are closed; a run of theirs still in flight ends unrecorded.
	var gone []probe.Prober
	for name, o := range olds {
		if !slices.Contains(res.Kept, name) {
			gone = append(gone, o.check.Prober)
		}
	}
	closeProbers(gone)
	s.checks, s.cfg = checks, next
	s.closers = nil
	for _, c := range checks {
		if cl, ok := c.Prober.(io.Closer); ok {
			s.closers = append(s.closers, cl)
		}
	}
	return res, nil
}

// definition is a check's config as canonical JSON, defaults applied: two
// checks are the same check when their definitions are equal.
func definition(c *config.Check) string {
	b, _ := json.Marshal(c)
	return string(b)
}

// needsRestart returns an error for each top-level field that differs
// between cur and next and that a reload cannot change.
func needsRestart(cur, next *config.Config) []error {
	a, b := topLevel(cur), topLevel(next)
	var names []string
	for k := range a {
		if !slices.Contains(reloadable, k) && a[k] != b[k] {
			names = append(names, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !slices.Contains(reloadable, k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		errs = append(errs, config.Errorf(n, "cannot change without a restart; the running config is kept"))
	}
	return errs
}

// topLevel is c's top-level fields, each as its JSON.
func topLevel(c *config.Config) map[string]string {
	b, _ := json.Marshal(c)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func closeProbers(ps []probe.Prober) {
	for _, p := range ps {
		if cl, ok := p.(io.Closer); ok {
			_ = cl.Close()
		}
	}
}

// ReloadFile loads the config file again (every rule, as `healthbridge
// validate`) and applies it with Reload. Every problem is logged on a line
// of its own, as validate prints it, and returned; the running config is
// then kept.
func (s *Sidecar) ReloadFile(trigger string) (ReloadResult, error) {
	path := s.opts.ConfigFile
	if path == "" {
		return ReloadResult{}, errors.New("config: no config file to reload (a drop-in mode)")
	}
	data, err := os.ReadFile(path)
	var next *config.Config
	if err == nil {
		s.reloadMu.Lock()
		s.loadedHash = sha256.Sum256(data)
		s.reloadMu.Unlock()
		next, err = config.Parse(data, kinds.Rules)
	}
	if err == nil && s.opts.Adjust != nil {
		s.opts.Adjust(next)
	}
	var res ReloadResult
	if err == nil {
		res, err = s.Reload(next)
	} else {
		s.reloaded.ok.Store(false)
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			s.log.Error("config reload refused: the running config is kept", "trigger", trigger, "file", path, "problem", line)
		}
		return res, err
	}
	for _, n := range res.Added {
		s.log.Info("check added by reload", "check", n)
	}
	for _, n := range res.Changed {
		s.log.Info("check changed by reload: it starts over", "check", n)
	}
	for _, n := range res.Removed {
		s.log.Info("check removed by reload", "check", n)
	}
	s.log.Info("config reloaded", "trigger", trigger, "file", path, "kept", len(res.Kept),
		"added", len(res.Added), "changed", len(res.Changed), "removed", len(res.Removed))
	return res, nil
}

// rememberFile records the hash of the config file as loaded at start-up,
// so that watchConfig reloads only when the content changes.
func (s *Sidecar) rememberFile() {
	if data, err := os.ReadFile(s.opts.ConfigFile); err == nil {
		s.reloadMu.Lock()
		s.loadedHash = sha256.Sum256(data)
		s.reloadMu.Unlock()
	}
}

// reloadLoop reloads on each request (SIGHUP) and, while the running
// config says watchConfig, when the file's content differs from what was
// last loaded or refused (a refused file is not tried again until it
// changes). Content, not file events: the kubelet updates a ConfigMap
// volume by replacing a "..data" symlink, which a watch on the file misses.
func (s *Sidecar) reloadLoop(ctx context.Context) {
	tick := time.NewTicker(config.WatchConfigInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.opts.Reload:
			_, _ = s.ReloadFile("signal")
		case <-tick.C:
			if !s.config().WatchConfig {
				continue
			}
			data, err := os.ReadFile(s.opts.ConfigFile)
			if err != nil {
				continue // mid-swap, or gone: the running config stays
			}
			s.reloadMu.Lock()
			same := sha256.Sum256(data) == s.loadedHash
			s.reloadMu.Unlock()
			if !same {
				_, _ = s.ReloadFile("watch")
			}
		}
	}
}

// serveReload is POST /-/reload on adminListen: 200 and what changed, or
// 400 and every problem, one per line (the running config is kept).
func (s *Sidecar) serveReload(w http.ResponseWriter, r *http.Request) {
	res, err := s.ReloadFile("http")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "reload refused, the running config is kept:\n%s\n", err)
		return
	}
	fmt.Fprintf(w, "reloaded: %d kept, %d added, %d changed, %d removed\n", len(res.Kept), len(res.Added), len(res.Changed), len(res.Removed))
}

// Package notify calls webhooks on check state changes (config notify:):
// one POST per transition, JSON with the fields of an /events event or a
// Slack/Mattermost-style {"text": "..."}.
//
// The notifier reads transitions from the store's backlog (the same one
// /events serves), so probes never wait on it. Each webhook has a bounded
// queue and one sender, which delivers in order (per check and overall),
// retries a failed attempt (an error, a timeout, a status outside 200-299)
// with exponential backoff, and gives up after maxAttempts. A full queue
// drops the new transition, with a log line and a count
// (healthbridge_notifications_total{result="dropped"}).
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/state"
)

// QueueSize is how many transitions wait per webhook before new ones are
// dropped.
const QueueSize = 256

// Backoff between attempts: 1 s doubling, at most 30 s.
const (
	retryInitial = time.Second
	retryMax     = 30 * time.Second
)

// Notifier delivers transitions to webhooks. Build it with New, run it
// with Run.
type Notifier struct {
	store  *state.Store
	log    *slog.Logger
	expose bool
	hooks  []*hook

	sent, failed, dropped atomic.Uint64

	// retryInitial is the first backoff, shorter in tests.
	retryInitial time.Duration
	// from is the last event ID when the notifier was built: every later
	// transition is sent, also those recorded before Run started.
	from uint64
}

type hook struct {
	cfg     config.NotifyWebhook
	headers http.Header
	queue   chan state.Event
	client  *http.Client
}

// New builds a notifier for the webhooks of cfg. Header values are read
// now (files, environment), so a missing one is a start-up error that
// names the field; they are never logged.
func New(cfg *config.Config, store *state.Store, log *slog.Logger) (*Notifier, error) {
	// Transitions count from now, when the checks have not run yet, not
	// from when Run starts: the scheduler may record the first ones before.
	n := &Notifier{store: store, log: log, expose: cfg.ExposeOutput, retryInitial: retryInitial, from: store.LastEventID()}
	for i, w := range cfg.Notify {
		h := &hook{cfg: w, headers: http.Header{}, queue: make(chan state.Event, QueueSize),
			client: &http.Client{Timeout: time.Duration(w.TimeoutSeconds) * time.Second}}
		for j, hd := range w.Headers {
			v := hd.Value
			switch {
			case hd.ValueFromFile != "":
				b, err := os.ReadFile(hd.ValueFromFile)
				if err != nil {
					return nil, config.Errorf(fmt.Sprintf("notify[%d].headers[%d].valueFromFile", i, j), "%v", err)
				}
				v = strings.TrimSpace(string(b))
			case hd.ValueFromEnv != "":
				var ok bool
				if v, ok = os.LookupEnv(hd.ValueFromEnv); !ok {
					return nil, config.Errorf(fmt.Sprintf("notify[%d].headers[%d].valueFromEnv", i, j), "$%s is not set", hd.ValueFromEnv)
				}
			}
			h.headers.Set(hd.Name, v)
		}
		h.headers.Set("Content-Type", "application/json")
		n.hooks = append(n.hooks, h)
	}
	return n, nil
}

// Run delivers until ctx is done: one goroutine reads the store's
// transitions and queues them, one per webhook sends. It returns when all
// have stopped (a delivery in flight is cancelled).
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, h := range n.hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.send(ctx, h)
		}()
	}
	n.read(ctx)
	wg.Wait()
}

// read queues each new transition on the webhooks that want it, never
// waiting: a full queue drops it.
func (n *Notifier) read(ctx context.Context) {
	last := n.from
	for {
		changed := n.store.Changed()
		evs, lost := n.store.EventsSince(last)
		if lost {
			n.log.Warn("notifications fell behind the transition backlog: some were not sent")
		}
		snap := n.store.Snapshot()
		for _, ev := range evs {
			last = ev.ID
			for _, h := range n.hooks {
				if !h.wants(snap, ev) {
					continue
				}
				select {
				case h.queue <- ev:
				default:
					n.dropped.Add(1)
					n.log.Warn("notification dropped: the queue is full", "url", h.cfg.URL, "check", ev.Check, "to", ev.To.String())
				}
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

func (h *hook) wants(snap *state.Snapshot, ev state.Event) bool {
	if len(h.cfg.Checks) > 0 && !slices.Contains(h.cfg.Checks, ev.Check) {
		return false
	}
	if len(h.cfg.Roles) > 0 {
		c, ok := snap.Get(ev.Check)
		if !ok || !slices.ContainsFunc(h.cfg.Roles, c.HasRole) {
			return false
		}
	}
	return true
}

// send delivers h's queue in order, each transition with retries.
func (n *Notifier) send(ctx context.Context, h *hook) {
	for {
		select {
		case ev := <-h.queue:
			n.deliver(ctx, h, ev)
		case <-ctx.Done():
			return
		}
	}
}

func (n *Notifier) deliver(ctx context.Context, h *hook, ev state.Event) {
	body := n.body(h, ev)
	wait := n.retryInitial
	for attempt := 1; ; attempt++ {
		err := h.post(ctx, body)
		if err == nil {
			n.sent.Add(1)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt >= int(h.cfg.MaxAttempts) {
			n.failed.Add(1)
			n.log.Warn("notification failed", "url", h.cfg.URL, "check", ev.Check, "attempts", attempt, "error", err.Error())
			return
		}
		n.log.Debug("notification attempt failed, retrying", "url", h.cfg.URL, "check", ev.Check, "attempt", attempt, "wait", wait, "error", err.Error())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, retryMax)
	}
}

func (h *hook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = h.headers.Clone()
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// Event is the JSON body of a notification: the fields of an /events
// event, with its id.
type Event struct {
	ID      uint64       `json:"id"`
	Check   string       `json:"check"`
	Kind    string       `json:"kind"`
	From    state.Status `json:"from"`
	To      state.Status `json:"to"`
	Time    time.Time    `json:"time"`
	Outcome string       `json:"outcome"`
	Output  string       `json:"output,omitempty"`
	Reason  string       `json:"reason,omitempty"` // "reload": a config reload added, changed or removed the check
}

func (n *Notifier) body(h *hook, ev state.Event) []byte {
	e := Event{ID: ev.ID, Check: ev.Check, Kind: ev.Kind, From: ev.From, To: ev.To, Time: ev.At.UTC(), Outcome: ev.Result.Outcome.String(), Reason: ev.Reason}
	if n.expose {
		e.Output = ev.Result.Output
	}
	if h.cfg.Format == "text" {
		text := fmt.Sprintf("healthbridge: check %s (%s) is %s (was %s)", e.Check, e.Kind, e.To, e.From)
		if e.Output != "" {
			text += ": " + e.Output
		}
		b, _ := json.Marshal(map[string]string{"text": text})
		return b
	}
	b, _ := json.Marshal(e)
	return b
}

// WriteMetrics writes healthbridge_notifications_total{result}, webhook
// notifications by result (sent, failed after every attempt, dropped
// because the queue was full), in the Prometheus text format (0.0.4).
func (n *Notifier) WriteMetrics(w io.Writer) error {
	_, err := fmt.Fprintf(w, "# HELP healthbridge_notifications_total Webhook notifications by result: sent, failed (after every attempt), dropped (queue full).\n"+
		"# TYPE healthbridge_notifications_total counter\n"+
		"healthbridge_notifications_total{result=\"dropped\"} %d\n"+
		"healthbridge_notifications_total{result=\"failed\"} %d\n"+
		"healthbridge_notifications_total{result=\"sent\"} %d\n",
		n.dropped.Load(), n.failed.Load(), n.sent.Load())
	return err
}

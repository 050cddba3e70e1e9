package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// Limits of the /events stream.
const (
	// MaxEventClients bounds the open /events streams; more get 503.
	MaxEventClients = 64
	// eventWriteTimeout bounds each write to an /events client: a client
	// that does not read for this long is dropped.
	eventWriteTimeout = 10 * time.Second
	// eventKeepalive is how often an idle stream gets a comment line, so
	// that proxies keep it open and a vanished client is noticed.
	eventKeepalive = 15 * time.Second
)

// events serves /events: a Server-Sent Events stream with one event per
// state change of a check (in the spirit of Docker's health_status
// events): `id: N`, `event: transition`, and JSON data with check, kind,
// from, to, time, outcome (and output with exposeOutput).
//
// A client starts with the changes after it connected, or, with
// Last-Event-ID, after that event, from the store's backlog
// (state.EventBacklog); when that is further back than the backlog holds
// it first gets `event: reset`. A client that falls more than the backlog
// behind (it stopped reading) gets `event: dropped` and is disconnected;
// so is one whose writes stall for eventWriteTimeout. The store's writer
// never waits on a client: it appends to the backlog and signals.
type events struct {
	store   *state.Store
	expose  bool
	clients atomic.Int32
	// writeTimeout is eventWriteTimeout, shorter in tests.
	writeTimeout time.Duration

	// done is closed (once, by close) when the streams must end: the
	// server is shutting down.
	done      chan struct{}
	closeOnce sync.Once
}

// close ends every stream.
func (e *events) close() { e.closeOnce.Do(func() { close(e.done) }) }

type eventJSON struct {
	Check    string        `json:"check"`
	Kind     string        `json:"kind"`
	From     state.Status  `json:"from"`
	To       state.Status  `json:"to"`
	Time     time.Time     `json:"time"`
	Outcome  probe.Outcome `json:"outcome"`
	ExitCode *int          `json:"exitCode,omitempty"`
	Output   string        `json:"output,omitempty"`
	Reason   string        `json:"reason,omitempty"`
}

func (e *events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if e.clients.Add(1) > MaxEventClients {
		e.clients.Add(-1)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many /events clients", http.StatusServiceUnavailable)
		return
	}
	defer e.clients.Add(-1)
	last := e.store.LastEventID()
	resumed := false
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n <= last {
			last, resumed = n, true
		}
	}
	// The stream stays a net/http response (http.Server.Shutdown tracks its
	// connection and ends it through CloseStreams); each write has its own
	// deadline instead of the server's, and the server's read deadline is
	// lifted: the client sends nothing more, and a read deadline that
	// passed would cancel the request's context.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	write := func(s string) bool {
		if rc.SetWriteDeadline(time.Now().Add(e.writeTimeout)) != nil {
			return false
		}
		if _, err := io.WriteString(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Accel-Buffering", "no")
	// A dropped client's connection is closed, not kept for another
	// request with a full socket.
	hd.Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	if !write("retry: 2000\n\n") {
		return
	}
	gone := r.Context().Done() // the client went away (or the server closed)
	keepalive := time.NewTicker(eventKeepalive)
	defer keepalive.Stop()
	first := true
	for {
		changed := e.store.Changed() // before reading: no event falls between
		evs, lost := e.store.EventsSince(last)
		switch {
		case lost && first && resumed:
			if !write(fmt.Sprintf("event: reset\ndata: {\"reason\": \"events after %d are no longer kept; resuming from the oldest kept\"}\n\n", last)) {
				return
			}
		case lost:
			write(fmt.Sprintf("event: dropped\ndata: {\"reason\": \"this client fell more than %d events behind\"}\n\n", state.EventBacklog))
			return // the connection closes: the client is dropped
		}
		first = false
		for _, ev := range evs {
			if !write(e.format(ev)) {
				return
			}
			last = ev.ID
		}
		select {
		case <-changed:
		case <-keepalive.C:
			if !write(": keepalive\n\n") {
				return
			}
		case <-gone:
			return
		case <-e.done:
			return
		}
	}
}

func (e *events) format(ev state.Event) string {
	d := eventJSON{Check: ev.Check, Kind: ev.Kind, From: ev.From, To: ev.To, Time: ev.At.UTC(), Outcome: ev.Result.Outcome, Reason: ev.Reason}
	if !ev.Result.End.IsZero() && ev.Result.ExitCode != 0 {
		ec := ev.Result.ExitCode
		d.ExitCode = &ec
	}
	if e.expose {
		d.Output = ev.Result.Output
	}
	b, _ := json.Marshal(d)
	return fmt.Sprintf("id: %d\nevent: transition\ndata: %s\n\n", ev.ID, b)
}

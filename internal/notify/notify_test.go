package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// receiver is a real HTTP receiver; answer decides each request's fate
// (n counts from 1): a status, or 0 to hang until the request ends.
type receiver struct {
	mu     sync.Mutex
	bodies []string
	auth   []string
	n      int
	answer func(n int) int
}

func (rc *receiver) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.n++
		n := rc.n
		rc.mu.Unlock()
		code := 200
		if rc.answer != nil {
			code = rc.answer(n)
		}
		if code == 0 {
			<-r.Context().Done()
			return
		}
		if code == 200 {
			rc.mu.Lock()
			rc.bodies = append(rc.bodies, string(b))
			rc.auth = append(rc.auth, r.Header.Get("Authorization"))
			rc.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.bodies...)
}

func setup(t *testing.T, hooks ...config.NotifyWebhook) (*state.Store, *Notifier) {
	t.Helper()
	cfg := &config.Config{Notify: hooks, ExposeOutput: true,
		Checks: []config.Check{{Name: "db", Roles: []config.Role{config.RoleReadiness}}, {Name: "web", Roles: []config.Role{config.RoleLiveness}}}}
	cfg.SetDefaults(nil)
	store := state.NewStore([]state.Spec{
		{Name: "db", Kind: "exec", Roles: []config.Role{config.RoleReadiness}, Policy: state.Policy{FailureThreshold: 1}},
		{Name: "web", Kind: "httpGet", Roles: []config.Role{config.RoleLiveness}, Policy: state.Policy{FailureThreshold: 1}},
	}, t0)
	n, err := New(cfg, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n.retryInitial = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return store, n
}

func flip(s *state.Store, check string, i int) {
	o := probe.OutcomeSuccess
	if i%2 == 1 {
		o = probe.OutcomeFailure
	}
	s.Record(check, probe.Result{Outcome: o, Output: "run " + strconv.Itoa(i)}, t0)
}

func waitN(t *testing.T, rc *receiver, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); len(rc.got()) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications delivered, want %d", len(rc.got()), n)
		}
	}
	return rc.got()
}

// TestDeliveryOrderRetriesAndHeaders: every transition, in order; a 500
// and a timeout are retried; the auth header comes from a file.
func TestDeliveryOrderRetriesAndHeaders(t *testing.T) {
	rc := &receiver{answer: func(n int) int {
		switch n {
		case 2:
			return 500 // the second transition is retried after a 500
		case 4:
			return 0 // and the third after a timeout
		}
		return 200
	}}
	url := rc.start(t)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("Bearer s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, n := setup(t, config.NotifyWebhook{URL: url, TimeoutSeconds: 1, Headers: []config.NotifyHeader{{Name: "Authorization", ValueFromFile: token}}})
	const count = 40
	for i := range count {
		flip(store, "db", i)
	}
	bodies := waitN(t, rc, count)
	for i, b := range bodies {
		var e struct {
			ID                      uint64
			Check, From, To, Output string
		}
		if err := json.Unmarshal([]byte(b), &e); err != nil {
			t.Fatal(err)
		}
		if e.ID != uint64(i+1) || e.Check != "db" || e.Output != "run "+strconv.Itoa(i) || e.From == e.To {
			t.Fatalf("notification %d: %s", i, b)
		}
	}
	if rc.auth[0] != "Bearer s3cret" {
		t.Fatalf("Authorization %q", rc.auth[0])
	}
	if n.sent.Load() != count || n.failed.Load() != 0 {
		t.Fatalf("sent %d failed %d", n.sent.Load(), n.failed.Load())
	}
}

// TestFiltersAndTextFormat: a text webhook for one role gets
// Slack-style {"text": ...} for that role's checks only.
func TestFiltersAndTextFormat(t *testing.T) {
	rc := &receiver{}
	url := rc.start(t)
	store, _ := setup(t, config.NotifyWebhook{URL: url, Format: "text", Roles: []config.Role{config.RoleLiveness}})
	flip(store, "db", 0)
	flip(store, "web", 1)
	flip(store, "web", 2)
	// Delivery keeps the order of recording: had db's transition been
	// sent, it would have come first.
	got := waitN(t, rc, 2)
	if len(got) != 2 || !strings.Contains(got[0], `"text":"healthbridge: check web (httpGet) is unhealthy (was starting): run 1"`) ||
		!strings.Contains(got[1], `check web (httpGet) is healthy (was unhealthy): run 2`) {
		t.Fatalf("%v", got)
	}
}

// TestHangingReceiverNeitherBlocksNorLosesCount: while the receiver
// hangs, recording transitions is not slowed, and what overflows the
// queue is dropped and counted.
func TestHangingReceiverNeitherBlocksNorLosesCount(t *testing.T) {
	rc := &receiver{answer: func(int) int { return 0 }}
	url := rc.start(t)
	store, n := setup(t, config.NotifyWebhook{URL: url, TimeoutSeconds: 30})
	start := time.Now()
	const count = QueueSize + 200
	for i := range count {
		flip(store, "db", i)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("recording %d transitions took %v with a hanging receiver", count, took)
	}
	for deadline := time.Now().Add(10 * time.Second); n.dropped.Load() < 100; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %d, want the overflow counted", n.dropped.Load())
		}
	}
}

// TestTransitionsBeforeRunAreSent: a transition recorded after the
// notifier was built but before Run started (the scheduler starts first,
// and a loaded machine may run a check before the notifier's goroutine) is
// sent; one recorded before it was built is not.
func TestTransitionsBeforeRunAreSent(t *testing.T) {
	rc := &receiver{}
	url := rc.start(t)
	cfg := &config.Config{Notify: []config.NotifyWebhook{{URL: url}}, ExposeOutput: true,
		Checks: []config.Check{{Name: "db"}}}
	cfg.SetDefaults(nil)
	store := state.NewStore([]state.Spec{{Name: "db", Kind: "exec", Policy: state.Policy{FailureThreshold: 1}}}, t0)
	flip(store, "db", 0) // before New: not sent
	n, err := New(cfg, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	flip(store, "db", 1) // after New, before Run: sent
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	flip(store, "db", 2) // a later transition: sent after it
	// Delivery keeps the order of recording: had the transition before New
	// been sent, it would have come first.
	got := waitN(t, rc, 2)
	if len(got) != 2 || !strings.Contains(got[0], `"to":"unhealthy"`) || !strings.Contains(got[1], `"to":"healthy"`) {
		t.Fatalf("notifications %v", got)
	}
}

package server

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// sse is a client of /events reading event blocks off a real connection.
type sse struct {
	resp *http.Response
	r    *bufio.Reader
}

func connectSSE(t *testing.T, url string, lastID string) *sse {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/events", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	c := &sse{resp: resp, r: bufio.NewReader(resp.Body)}
	c.next(t) // retry:
	return c
}

// next returns the next block's fields (id, event, data), skipping
// comments.
func (c *sse) next(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if len(m) > 0 {
				return m
			}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		m[k] = v
	}
}

func eventServer(t *testing.T, expose bool) (*state.Store, string, *Handler) {
	t.Helper()
	s := state.NewStore([]state.Spec{{Name: "db", Kind: "exec", Roles: []config.Role{config.RoleReadiness}, Policy: state.Policy{FailureThreshold: 1}}}, t0)
	h := New(s, Options{ExposeOutput: expose})
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = NewHTTPServer(h, slog.New(slog.DiscardHandler))
	srv.Start()
	t.Cleanup(srv.Close)
	return s, srv.URL, h
}

// TestEventsEveryTransitionInOrder: 10,000 transitions reach each of two
// clients exactly once, in order, with their ids; a client that resumes
// with Last-Event-ID gets what it missed.
func TestEventsEveryTransitionInOrder(t *testing.T) {
	t.Parallel()
	s, url, _ := eventServer(t, true)
	a, b := connectSSE(t, url, ""), connectSSE(t, url, "")
	const n = 10000
	var progress [2]atomic.Int64 // events each client has read
	got := make(chan bool, 2)
	read := func(k int, c *sse) {
		ok := true
		for i := 1; i <= n; i++ {
			m := c.next(t)
			var e struct{ Check, From, To, Output string }
			if m["event"] != "transition" || m["id"] != strconv.Itoa(i) || json.Unmarshal([]byte(m["data"]), &e) != nil || e.Check != "db" {
				t.Errorf("client %d, event %d: %v", k, i, m)
				ok = false
				break
			}
			want := "healthy"
			if i%2 == 0 {
				want = "unhealthy"
			}
			if e.To != want || e.From == e.To || e.Output != "run "+strconv.Itoa(i) {
				t.Errorf("client %d, event %d: %+v", k, i, e)
				ok = false
				break
			}
			progress[k].Store(int64(i))
		}
		got <- ok
	}
	go read(0, a)
	go read(1, b)
	for i := 1; i <= n; i++ {
		o := probe.OutcomeSuccess
		if i%2 == 0 {
			o = probe.OutcomeFailure
		}
		// Stay within the backlog of the slower reader (a real scheduler
		// is far slower than this loop).
		for deadline := time.Now().Add(30 * time.Second); int64(i)-min(progress[0].Load(), progress[1].Load()) > state.EventBacklog/2; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("readers stopped reading")
			}
		}
		s.Record("db", probe.Result{Outcome: o, Output: "run " + strconv.Itoa(i)}, t0)
	}
	for range 2 {
		select {
		case ok := <-got:
			if !ok {
				t.FailNow()
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a client did not get all the events")
		}
	}
	// Resume from event 9990: the 10 after it.
	c := connectSSE(t, url, "9990")
	for i := 9991; i <= n; i++ {
		if m := c.next(t); m["id"] != strconv.Itoa(i) {
			t.Fatalf("resumed: %v, want id %d", m, i)
		}
	}
	// From further back than the backlog: told, then the oldest kept.
	c = connectSSE(t, url, "5")
	if m := c.next(t); m["event"] != "reset" {
		t.Fatalf("resume beyond the backlog: %v", m)
	}
	if m := c.next(t); m["id"] != strconv.Itoa(n-state.EventBacklog+1) {
		t.Fatalf("first after reset: %v", m)
	}
}

// TestEventsStalledClientIsDropped: a client that never reads does not
// hold up the store's writer, and is dropped once it falls behind.
func TestEventsStalledClientIsDropped(t *testing.T) {
	t.Parallel()
	s, url, h := eventServer(t, true) // outputs shown: 12 MB in all, more than socket buffers hold
	h.events.writeTimeout = time.Second
	addr := strings.TrimPrefix(url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The handler is streaming once its first line arrives.
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 3*state.EventBacklog; i++ {
		o := probe.OutcomeSuccess
		if i%2 == 1 {
			o = probe.OutcomeFailure
		}
		s.Record("db", probe.Result{Outcome: o, Output: strings.Repeat("x", 4000)}, t0)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("recording 3,072 transitions took %v with a stalled client connected", took)
	}
	// Still not reading, past the write timeout: the server cuts the
	// stalled client off (its write stalled, or it fell behind the backlog
	// and was told "dropped"); the stream then ends with EOF, not with our
	// read deadline.
	for deadline := time.Now().Add(20 * time.Second); h.events.clients.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stalled client is still served")
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("the stalled client was not dropped: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); h.events.clients.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d /events clients still counted", h.events.clients.Load())
		}
	}
}

// TestEventsStreamOutlivesServerTimeouts: a stream stays open past the
// server's 10 s read and write timeouts, and still delivers.
func TestEventsStreamOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	s, url, _ := eventServer(t, false)
	c := connectSSE(t, url, "")
	time.Sleep(readTimeout + writeTimeout/2)
	s.Record("db", probe.Result{Outcome: probe.OutcomeSuccess}, t0)
	if m := c.next(t); m["event"] != "transition" || m["id"] != "1" {
		t.Fatalf("%v", m)
	}
}

package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe/kinds"
)

// TestRunServesAndStopsCleanly runs a whole sidecar in this process (so the
// race detector sees it): an exec check, a ttl check with its admin port
// and the HAProxy agent, then SIGTERM's path: Run returns nil and every
// listener is closed.
func TestRunServesAndStopsCleanly(t *testing.T) {
	sc, stop, done := runSidecar(t, `
listen: 127.0.0.1:0
adminListen: 127.0.0.1:0
agent: {listen: "127.0.0.1:0"}
checks:
  - name: cmd
    exec: {command: ["true"]}
    periodSeconds: 1
  - name: beat
    roles: [readiness]
    ttl: {seconds: 30}
`)
	base := "http://" + sc.ln.Addr().String()
	admin := "http://" + sc.adminLn.Addr().String()
	agent := sc.agentLn.Addr().String()

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(path string, code int) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, _ := get(path); c == code {
				return
			}
			if time.Now().After(deadline) {
				c, b := get(path)
				t.Fatalf("%s: %d %q, want %d", path, c, b, code)
			}
		}
	}
	waitFor("/livez", 200)
	if c, _ := get("/readyz"); c != 503 {
		t.Fatalf("readyz before any push: %d", c)
	}
	resp, err := http.Post(admin+"/checks/beat/pass", "text/plain", strings.NewReader("alive"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor("/readyz", 200)
	c, err := net.Dial("tcp", agent)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := io.ReadAll(c)
	c.Close()
	if string(line) != "up ready\n" {
		t.Fatalf("agent: %q", line)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	for _, addr := range []string{sc.ln.Addr().String(), sc.adminLn.Addr().String(), agent} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts after Run returned", addr)
		}
	}
	// Every goroutine Run started has ended: the three servers' results
	// (public, admin, agent) all had somewhere to go.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "internal/app.(*Sidecar).Run.func") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines of Run outlive it:\n%s", stacks)
		}
	}
}

// TestDrainDelayKeepsReadinessThenFails: after the signal, readiness keeps
// passing for drainDelaySeconds (never less: a lower bound cannot race),
// then fails while the server still answers, within shutdownDelaySeconds.
func TestDrainDelayKeepsReadinessThenFails(t *testing.T) {
	sc, stop, done := runSidecar(t, `
listen: 127.0.0.1:0
shutdownDelaySeconds: 4
drainDelaySeconds: 2
checks:
  - name: cmd
    exec: {command: ["true"]}
    periodSeconds: 1
`)
	base := "http://" + sc.ln.Addr().String()
	code := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for deadline := time.Now().Add(15 * time.Second); code("/readyz") != 200; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
	}
	signalled := time.Now()
	stop()
	for code("/readyz") == 200 {
		time.Sleep(20 * time.Millisecond)
	}
	failedAfter := time.Since(signalled)
	if failedAfter < 2*time.Second {
		t.Fatalf("readiness failed %v after the signal, before drainDelaySeconds", failedAfter)
	}
	if c := code("/livez"); c != 200 {
		t.Fatalf("/livez during the shutdown delay: %d", c)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	if took := time.Since(signalled); took < 4*time.Second {
		t.Fatalf("stopped %v after the signal, before shutdownDelaySeconds", took)
	}
}

// TestNotifyWired: a sidecar with a webhook POSTs its checks' transitions.
func TestNotifyWired(t *testing.T) {
	got := make(chan string, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	t.Cleanup(recv.Close)
	_, stop, done := runSidecar(t, `
listen: 127.0.0.1:0
notify: [{url: "`+recv.URL+`"}]
checks:
  - name: cmd
    exec: {command: ["true"]}
    periodSeconds: 1
`)
	select {
	case b := <-got:
		if !strings.Contains(b, `"check":"cmd"`) || !strings.Contains(b, `"to":"healthy"`) {
			t.Fatalf("notification %s", b)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no notification")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// runSidecar builds a sidecar from a YAML config and runs it in this
// process; stop ends it (as the signal does), done delivers Run's result.
func runSidecar(t *testing.T, yaml string) (*Sidecar, context.CancelFunc, <-chan error) {
	t.Helper()
	cfg, err := kinds.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := Build(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx, nil) }()
	return sc, stop, done
}

// TestGRPCListenNeedsTheFullBuild: the lean build refuses grpcListen at
// start-up, naming the field and the build that serves it, and has nothing
// listening afterwards; the full build listens.
func TestGRPCListenNeedsTheFullBuild(t *testing.T) {
	cfg, err := kinds.Parse([]byte("listen: 127.0.0.1:0\ngrpcListen: 127.0.0.1:0\nchecks:\n  - {name: t, exec: {command: [\"true\"]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := Build(cfg, Options{})
	if kinds.Lean {
		if err == nil || !strings.Contains(err.Error(), "grpcListen: not in this binary (built with -tags lean)") {
			t.Fatalf("lean build: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if sc.grpcLn == nil || sc.grpcSrv == nil {
		t.Fatal("no gRPC listener in the full build")
	}
}

// TestShutdownEndsEventStreams: /events is a tracked net/http response, so
// the server's shutdown ends an open stream (the client reads the end of
// it) instead of leaving a hijacked connection behind it.
func TestShutdownEndsEventStreams(t *testing.T) {
	sc, stop, done := runSidecar(t, "listen: 127.0.0.1:0\nchecks:\n  - {name: cmd, exec: {command: [\"true\"]}, periodSeconds: 1}\n")
	resp, err := http.Get("http://" + sc.ln.Addr().String() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); ended <- err }()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("the stream ended with %v, want its end", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the /events stream outlived the server's shutdown")
	}
}

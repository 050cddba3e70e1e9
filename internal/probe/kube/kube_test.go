package kube

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/proc"
)

// The tests below run this test binary as the helper (TestMain): a real
// process speaking healthbridge-kube's side of the pipe from a script, to
// test how healthbridge supervises it. The real helper against a real
// API server is tested in e2e (TestKube*).
const fakeHelperEnv = "HEALTHBRIDGE_TEST_FAKE_KUBE_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeHelperEnv); mode != "" {
		fakeHelper(mode)
		return
	}
	os.Exit(m.Run())
}

var readyPod = &Pod{Name: "web", Namespace: "ns", Spec: PodSpec{Containers: []Container{{Name: "app"}}},
	Status: PodStatus{ContainerStatuses: []ContainerStatus{{Name: "app", Ready: true}}}}

// fakeHelper plays a helper: "ready-then-exit" sends a synced ready pod
// and exits 3 (the second time it runs, it stays until its stdin closes);
// "garbage" writes a line that is not a state, then waits; "mute" sends a
// synced pod, closes its standard output and stays; "stubborn"
// sends a synced pod, then ignores SIGTERM and its stdin's end of file.
func fakeHelper(mode string) {
	enc := json.NewEncoder(os.Stdout)
	switch mode {
	case "ready-then-exit":
		_ = enc.Encode(Message{Synced: true, Pod: readyPod})
		marker := os.Getenv("MARKER")
		if _, err := os.Stat(marker); err != nil {
			_ = os.WriteFile(marker, nil, 0o644)
			fmt.Fprintln(os.Stderr, "lost the API server")
			os.Exit(3)
		}
		_, _ = bufio.NewReader(os.Stdin).ReadString(0) // until EOF
	case "garbage":
		fmt.Println("{not json")
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
	case "mute":
		_ = enc.Encode(Message{Synced: true, Pod: readyPod})
		os.Stdout.Close()
		time.Sleep(time.Hour)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		_ = enc.Encode(Message{Synced: true, Pod: readyPod})
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
		time.Sleep(time.Hour)
	}
	os.Exit(0)
}

func fakeProber(t *testing.T, mode string) *Prober {
	t.Helper()
	t.Setenv(fakeHelperEnv, mode)
	t.Setenv("MARKER", t.TempDir()+"/ran")
	ctx, cancel := context.WithCancel(context.Background())
	p := &Prober{ns: "ns", pod: "web", maxStale: time.Hour, helper: os.Args[0], watchArgs: []string{"-test.run=^$"}, now: time.Now,
		ctx: ctx, cancel: cancel, done: make(chan struct{}), synced: make(chan struct{})}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// readyProber is fakeProber whose first run has passed, and a context for
// further runs (a minute: an event bound).
func readyProber(t *testing.T, mode string) (*Prober, context.Context) {
	t.Helper()
	p := fakeProber(t, mode)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if r := p.Probe(ctx); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("first run: %+v", r)
	}
	return p, ctx
}

// waitFor polls cond for up to a minute (an event bound, not a timing
// assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never: %s", what)
}

// TestHelperExitIsLostContactThenRestarted: a helper that exits leaves
// the last known pod, judged within maxStalenessSeconds with the reason
// (its exit status and standard error) in the output; it is started
// again, and its first state brings the check back in contact.
func TestHelperExitIsLostContactThenRestarted(t *testing.T) {
	p, ctx := readyProber(t, "ready-then-exit")
	var lost probe.Result
	waitFor(t, "the helper's exit is noted", func() bool {
		lost = p.Probe(ctx)
		return strings.Contains(lost.Output, "last known status")
	})
	if lost.Outcome != probe.OutcomeSuccess || !strings.Contains(lost.Output, "healthbridge-kube exited: exit status 3: lost the API server") {
		t.Fatalf("after the helper exited: %+v", lost)
	}
	waitFor(t, "the restarted helper's state clears the lost contact", func() bool {
		r := p.Probe(ctx)
		return r.Outcome == probe.OutcomeSuccess && !strings.Contains(r.Output, "last known")
	})
}

// TestHelperGarbageIsKilled: a line that is not a state is not trusted:
// the helper is killed, and with no state ever received the check cannot
// be evaluated (never healthy).
func TestHelperGarbageIsKilled(t *testing.T) {
	p := fakeProber(t, "garbage")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := p.Probe(ctx)
	if r.Outcome != probe.OutcomeUnknown {
		t.Fatalf("garbage: %+v", r)
	}
	waitFor(t, "the unreadable state is the reason", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.lastErr != nil && strings.Contains(p.lastErr.Error(), "unreadable state")
	})
}

// TestMuteHelperIsKilled: a helper that closes its standard output but
// keeps running can report nothing more: it is killed, and that counts as
// lost contact, never as a state that stays current.
func TestMuteHelperIsKilled(t *testing.T) {
	p, ctx := readyProber(t, "mute")
	waitFor(t, "the mute helper is noted", func() bool {
		r := p.Probe(ctx)
		return strings.Contains(r.Output, "last known status") && strings.Contains(r.Output, "healthbridge-kube exited: signal: killed")
	})
}

// TestCloseKillsAStubbornHelper: a helper that ignores SIGTERM and its
// stdin's end of file is killed by Close, and reaped: no process is left.
func TestCloseKillsAStubbornHelper(t *testing.T) {
	p, _ := readyProber(t, "stubborn")
	if n := proc.Tracked(); n != 1 {
		t.Fatalf("%d tracked children while the helper runs, want 1", n)
	}
	_ = p.Close()
	if n := proc.Tracked(); n != 0 {
		t.Fatalf("%d tracked children after Close, want 0", n)
	}
}

// TestStalenessCountsFromLastContact: the last known status is used for
// maxStalenessSeconds after the first failed request (healthbridge's last
// contact), then the check cannot be evaluated; a successful request
// clears it. Judged with an injected clock, so the bounds are exact.
func TestStalenessCountsFromLastContact(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	p := &Prober{now: func() time.Time { return now }, maxStale: 5 * time.Second}
	judge := func() (string, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return staleness(p.lostSince, p.lastErr, p.now(), p.maxStale, "ns/web")
	}
	if s, err := judge(); s != "" || err != nil {
		t.Fatalf("in contact: %q %v", s, err)
	}
	p.noteContact(errors.New("connection refused"))
	now = t0.Add(3 * time.Second)
	p.noteContact(errors.New("still refused")) // later failures do not move the start
	now = t0.Add(5 * time.Second)
	s, err := judge()
	if err != nil || s != " (last known status: API server unreachable for 5s: still refused)" {
		t.Fatalf("at maxStaleness: %q %v", s, err)
	}
	now = t0.Add(5*time.Second + time.Millisecond)
	if _, err := judge(); err == nil || !strings.HasPrefix(err.Error(), "API server unreachable for 5s (more than maxStalenessSeconds 5s): last known status of pod ns/web is too old: still refused") {
		t.Fatalf("past maxStaleness: %v", err)
	}
	p.noteContact(nil)
	if s, err := judge(); s != "" || err != nil {
		t.Fatalf("back in contact: %q %v", s, err)
	}
}

func TestCloseTwiceConcurrently(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Prober{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Close() }()
	}
	wg.Wait()
	if ctx.Err() == nil {
		t.Fatal("Close did not cancel")
	}
}

// TestMissingHelperIsAStartupError: without healthbridge-kube next to the
// executable or on $PATH, New refuses the check and says where it looked.
func TestMissingHelperIsAStartupError(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := New(&config.Check{KubernetesPod: &config.KubernetesPodAction{}}, probe.Deps{})
	if err == nil || !strings.Contains(err.Error(), "kubernetesPod") || !strings.Contains(err.Error(), "healthbridge-kube, which is neither at") {
		t.Fatalf("New without the helper: %v", err)
	}
}

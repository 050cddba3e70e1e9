package kube

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

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
	p.noteContact(context.Canceled) // our own cancellation is not a lost contact
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

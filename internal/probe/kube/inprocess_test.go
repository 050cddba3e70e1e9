package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
)

// inProcessProber is fakeProber with the watch run in process by watch,
// which plays healthbridge-kube's side as helper.Run would.
func inProcessProber(t *testing.T, watch func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int) (*Prober, context.Context) {
	t.Helper()
	old := InProcess
	InProcess = watch
	ctx, cancel := context.WithCancel(context.Background())
	p := &Prober{ns: "ns", pod: "web", maxStale: time.Hour, helper: inProcessHelper, watchArgs: []string{"watch"}, now: time.Now,
		ctx: ctx, cancel: cancel, done: make(chan struct{}), synced: make(chan struct{})}
	t.Cleanup(func() { _ = p.Close(); InProcess = old })
	runCtx, runCancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(runCancel)
	if r := p.Probe(runCtx); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("first run: %+v", r)
	}
	return p, runCtx
}

// TestInProcessExitIsLostContactThenRestarted is
// TestHelperExitIsLostContactThenRestarted with the watch in process: its
// end (exit code and standard error) is lost contact, and it is started
// again; standard input ends when the prober closes, as a pipe's does.
func TestInProcessExitIsLostContactThenRestarted(t *testing.T) {
	var runs atomic.Int32
	stdinEnded := make(chan struct{}, 2)
	p, ctx := inProcessProber(t, func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		_ = json.NewEncoder(stdout).Encode(Message{Synced: true, Pod: readyPod})
		if runs.Add(1) == 1 {
			fmt.Fprintln(stderr, "lost the API server")
			return 3
		}
		_, _ = io.Copy(io.Discard, stdin)
		stdinEnded <- struct{}{}
		return 0
	})
	var lost probe.Result
	waitFor(t, "the watch's end is noted", func() bool {
		lost = p.Probe(ctx)
		return strings.Contains(lost.Output, "last known status")
	})
	if lost.Outcome != probe.OutcomeSuccess || !strings.Contains(lost.Output, "the pod watch ended: exit status 3: lost the API server") {
		t.Fatalf("after the watch ended: %+v", lost)
	}
	waitFor(t, "the restarted watch's state clears the lost contact", func() bool {
		r := p.Probe(ctx)
		return r.Outcome == probe.OutcomeSuccess && !strings.Contains(r.Output, "last known")
	})
	_ = p.Close()
	select {
	case <-stdinEnded:
	case <-time.After(time.Minute):
		t.Fatal("the watch's standard input did not end when the prober closed")
	}
}

// TestInProcessCloseLeavesAStubbornWatch: a watch that ignores its context
// and its standard input's end does not hold Close: it is left behind.
func TestInProcessCloseLeavesAStubbornWatch(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	p, _ := inProcessProber(t, func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		_ = json.NewEncoder(stdout).Encode(Message{Synced: true, Pod: readyPod})
		<-release
		return 0
	})
	closed := make(chan struct{})
	go func() { _ = p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close waited for a watch that ignores its context")
	}
}

// TestInProcessGarbageIsNotTrusted: a line that is not a state ends the
// watch, and with no state ever received the check cannot be evaluated.
func TestInProcessGarbageIsNotTrusted(t *testing.T) {
	old := InProcess
	InProcess = func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		fmt.Fprintln(stdout, "{not json")
		<-ctx.Done()
		return 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Prober{ns: "ns", pod: "web", maxStale: time.Hour, helper: inProcessHelper, watchArgs: []string{"watch"}, now: time.Now,
		ctx: ctx, cancel: cancel, done: make(chan struct{}), synced: make(chan struct{})}
	t.Cleanup(func() { _ = p.Close(); InProcess = old })
	runCtx, runCancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer runCancel()
	if r := p.Probe(runCtx); r.Outcome != probe.OutcomeUnknown {
		t.Fatalf("garbage: %+v", r)
	}
	waitFor(t, "the unreadable state is the reason", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.lastErr != nil && strings.Contains(p.lastErr.Error(), "unreadable state")
	})
}

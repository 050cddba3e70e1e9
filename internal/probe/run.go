package probe

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// AbandonGrace is how long Run waits, once a run's timeout has passed and
// its context is cancelled, for the prober to return before it gives up on
// it. A prober that honours its context returns within milliseconds (an
// exec probe's process group is killed with SIGKILL); one that does not is
// stuck in something no signal ends, classically a process in
// uninterruptible I/O on a hung NFS or FUSE mount.
const AbandonGrace = time.Second

// TimeoutOutput is the output of a run that exceeded its timeout, in
// Docker's words (moby daemon/health.go): "Health check exceeded timeout
// (1s)".
func TimeoutOutput(timeout time.Duration) string {
	return fmt.Sprintf("Health check exceeded timeout (%v)", timeout)
}

// Run runs p once with a context that expires after timeout, fills in the
// result's Start and End, and turns a panic into an Unknown result.
//
// It never takes longer than timeout plus AbandonGrace, whatever p does:
//   - A run whose deadline passed is a failure, never Unknown: a prober
//     that could not even start before its deadline (an exec under heavy
//     load) reports a timeout, as the kubelet and Docker count it.
//   - A prober still running AbandonGrace after its deadline is abandoned:
//     Run returns a failure with the timeout wording, noting that the probe
//     could not be stopped, and a non-nil channel that receives the
//     abandoned run's result when it finally returns. The caller must not
//     start another run of the same prober before that channel delivers
//     (Docker: "we don't want dying probes to pile up").
//
// When ctx itself is cancelled (the scheduler stopping), the result says so
// with an Unknown outcome; callers discard it.
func Run(ctx context.Context, p Prober, timeout time.Duration) (Result, <-chan Result) {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	done := make(chan Result, 1)
	go func() {
		defer cancel()
		done <- call(rctx, p)
	}()
	finish := func(r Result) Result {
		if r.Start.IsZero() {
			r.Start = start
		}
		if r.End.IsZero() {
			r.End = time.Now()
		}
		if r.Outcome == OutcomeUnknown && ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
			out := TimeoutOutput(timeout)
			if r.Output != "" {
				out += ": " + r.Output
			}
			r = Result{Outcome: OutcomeFailure, Output: out, Start: r.Start, End: r.End, ExitCode: r.ExitCode}
		}
		return r
	}
	select {
	case r := <-done:
		return finish(r), nil
	case <-rctx.Done():
	}
	grace := time.NewTimer(AbandonGrace)
	defer grace.Stop()
	select {
	case r := <-done:
		return finish(r), nil
	case <-grace.C:
	}
	r := Result{
		Outcome:  OutcomeFailure,
		Output:   TimeoutOutput(timeout) + ": the probe did not stop when cancelled (a process that cannot be killed, e.g. blocked in I/O on a hung mount); no new run starts until it ends",
		Start:    start,
		End:      time.Now(),
		ExitCode: -1,
	}
	if ctx.Err() != nil {
		r = Unknown(fmt.Errorf("run cancelled: %w", ctx.Err()))
	}
	return r, done
}

// StillRunning is the failure recorded for a period in which an abandoned
// run (see Run) has still not returned: no second instance is started.
func StillRunning(since time.Time, now time.Time) Result {
	return Result{
		Outcome:  OutcomeFailure,
		Output:   fmt.Sprintf("the previous run, started %v ago, is still terminating: it could not be stopped; no new run is started until it ends", now.Sub(since).Round(time.Millisecond)),
		Start:    now,
		End:      now,
		ExitCode: -1,
	}
}

// call runs p.Probe, turning a panic into an Unknown result.
func call(ctx context.Context, p Prober) (r Result) {
	defer func() {
		if v := recover(); v != nil {
			r = Unknown(fmt.Errorf("probe panicked: %v", v))
		}
	}()
	return p.Probe(ctx)
}

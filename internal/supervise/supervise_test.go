package supervise

import (
	"testing"
	"time"
)

// TestBackoffIsCrashLoopBackOff: the first restart at once, then 10s
// doubling to 5m; 10 minutes of running starts over.
func TestBackoffIsCrashLoopBackOff(t *testing.T) {
	var b Backoff
	var got []time.Duration
	for range 8 {
		got = append(got, b.Next(time.Second))
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second,
		5 * time.Minute, 5 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	if d := b.Next(10 * time.Minute); d != 0 {
		t.Fatalf("after 10 minutes of running: %v, want 0 (starts over)", d)
	}
	if d := b.Next(9 * time.Minute); d != 10*time.Second {
		t.Fatalf("after 9 minutes: %v, want 10s (no reset)", d)
	}
	if c := b.Current(); c != 20*time.Second {
		t.Fatalf("current %v", c)
	}
}

package file_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/file"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
)

// TestFile: a missing file fails, an existing one passes, one modified
// longer ago than maxAge fails and passes again once touched.
func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heartbeat")
	p := file.New(path, time.Minute)
	if r := p.Probe(t.Context()); r.Outcome != probe.OutcomeFailure || r.Output != path+" does not exist" {
		t.Fatalf("missing: %v %q", r.Outcome, r.Output)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := p.Probe(t.Context()); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("fresh: %v %q", r.Outcome, r.Output)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if r := p.Probe(t.Context()); r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "was last modified 2h0m0s ago, over maxAge 1m0s") {
		t.Fatalf("stale: %v %q", r.Outcome, r.Output)
	}
	if r := file.New(path, 0).Probe(t.Context()); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("no maxAge: %v %q", r.Outcome, r.Output)
	}
	now := time.Now()
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	if r := p.Probe(t.Context()); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("touched: %v %q", r.Outcome, r.Output)
	}
}

// TestFileValidated: the path must be absolute, maxAgeSeconds not negative.
func TestFileValidated(t *testing.T) {
	for body, want := range map[string]string{
		"{path: heartbeat}":             `checks[0].file.path: must be an absolute path, got "heartbeat"`,
		"{path: /x, maxAgeSeconds: -1}": "checks[0].file.maxAgeSeconds: must be ≥ 0, got -1",
		"{maxAgeSeconds: 1}":            `checks[0].file.path: must be an absolute path, got ""`,
	} {
		if _, err := kinds.Parse([]byte("checks:\n  - name: c\n    file: " + body + "\n")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("file %s: %v, want %q", body, err, want)
		}
	}
	if _, err := kinds.Parse([]byte("checks:\n  - name: c\n    file: {path: /tmp/x, maxAgeSeconds: 60}\n")); err != nil {
		t.Fatal(err)
	}
}

package rundir

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/healthbridge/healthbridge/health"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// TestFutureMtimeAgesFromFirstSight: a heartbeat written once with an
// mtime 70 years ahead is fresh when the check first sees it and stale
// maxAge later, not fresh for 70 years.
func TestFutureMtimeAgesFromFirstSight(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{health.PidFile: strconv.Itoa(os.Getpid()) + "\n", health.ErrorFile: "0\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	future := time.Now().AddDate(70, 0, 0)
	if err := os.Chtimes(filepath.Join(dir, health.ErrorFile), future, future); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		p := NewDir(dir, true, 3*time.Second)
		if r := p.Probe(t.Context()); r.Outcome != probe.OutcomeSuccess {
			t.Fatalf("first run: %+v", r)
		}
		time.Sleep(4 * time.Second)
		if r := p.Probe(t.Context()); r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "stale: state last written 4s ago") {
			t.Fatalf("4s later: %+v", r)
		}
	})
}

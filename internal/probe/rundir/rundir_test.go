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
	"github.com/healthbridge/healthbridge/internal/config"
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

// TestChildPid: with a supervised child, the pid file must name it or a
// descendant; with none running the check fails; checkPid: false opts out.
func TestChildPid(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{health.PidFile: strconv.Itoa(os.Getpid()) + "\n", health.ErrorFile: "0\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	off := false
	for _, tc := range []struct {
		name     string
		child    int
		checkPid *bool
		want     probe.Outcome
		output   string
	}{
		{"no child", 0, nil, probe.OutcomeFailure, "not running"},
		{"the child itself", os.Getpid(), nil, probe.OutcomeSuccess, ""},
		{"an ancestor of the child", os.Getppid(), nil, probe.OutcomeSuccess, ""},
		{"another process", 1 << 22, nil, probe.OutcomeFailure, "not the supervised command"},
		{"checkPid false", 0, &off, probe.OutcomeSuccess, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &config.Check{Rundir: &config.RundirAction{Path: filepath.Dir(dir), Unit: "app", CheckPid: tc.checkPid}}
			p, err := New(c, probe.Deps{ChildPid: func() int { return tc.child }})
			if err != nil {
				t.Fatal(err)
			}
			r := p.Probe(t.Context())
			if r.Outcome != tc.want || !strings.Contains(r.Output, tc.output) {
				t.Fatalf("got %+v, want %v with %q", r, tc.want, tc.output)
			}
		})
	}
}

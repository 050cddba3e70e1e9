package tcp_test

import (
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// pgStartup is a PostgreSQL v3 StartupMessage for the user postgres, what
// pg_isready sends; pgReady matches a reply that pg_isready reads as
// "accepting connections": an authentication request ('R'), or an error
// ('E') whose SQLSTATE (the 'C' field) is anything but 57P03
// (cannot_connect_now: starting up, shutting down, in recovery), which it
// reads as "rejecting connections". No reply is "no response".
const (
	pgStartup = "00000017000300007573657200706f7374677265730000"
	pgReady   = `^R|^E[\s\S]{4}(?:[^C\x00][^\x00]*\x00)*C(?:[^5]|5[^7]|57[^P]|57P[^0]|57P0[^3])`
)

// pgCheck is the documented tcpSocket body of a pg_isready-like check.
const pgCheck = "sendHex: \"" + pgStartup + "\"\nexpect: '" + pgReady + "'"

// TestPostgresReadinessAsPgIsready: against Debian's PostgreSQL, the
// documented check passes while the server accepts connections, fails
// with its 57P03 error while it is shutting down (a smart shutdown waits
// for a session this test holds open), and fails on a refused connection
// once it is gone: pg_isready's three answers.
func TestPostgresReadinessAsPgIsready(t *testing.T) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(bins)
	testutil.Need(t, len(bins) > 0, "no PostgreSQL server binaries", "apt-get install postgresql")
	bin := filepath.Dir(bins[len(bins)-1])
	// Not t.TempDir(): its parent is private to root, and the server runs
	// as postgres.
	dir, err := os.MkdirTemp("", "healthbridge-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	// PostgreSQL refuses to run as root: as root, run it as the postgres
	// user Debian's package creates.
	as := func(name string, args ...string) *exec.Cmd {
		if os.Geteuid() == 0 {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
		return exec.Command(filepath.Join(bin, name), args...)
	}
	if os.Geteuid() == 0 {
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := as("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := testutil.FreePort(t)
	srv := as("postgres", "-D", data, "-k", dir, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-c", "fsync=off")
	var log strings.Builder
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	t.Cleanup(func() { _ = as("pg_ctl", "stop", "-D", data, "-m", "immediate").Run(); <-exited })

	until := func(what string, ok func(probe.Result) bool) probe.Result {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			r := probeTCP(t, port, pgCheck)
			if ok(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never; last %v %q\n%s", what, r.Outcome, r.Output, log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	until("accepting connections", func(r probe.Result) bool { return r.Outcome == probe.OutcomeSuccess })

	// A session held open (trust: the server answers AuthenticationOk and
	// waits for queries), then a smart shutdown, which waits for it.
	var session net.Conn
	session, err = net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	startup, _ := hex.DecodeString(pgStartup)
	if _, err := session.Write(startup); err != nil {
		t.Fatal(err)
	}
	if _, err := session.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if out, err := as("pg_ctl", "stop", "-D", data, "-m", "smart", "--no-wait").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
	r := until("rejecting connections", func(r probe.Result) bool { return r.Outcome == probe.OutcomeFailure })
	if !strings.Contains(r.Output, "57P03") || !strings.Contains(r.Output, "the database system is shutting down") {
		t.Fatalf("while shutting down: %q", r.Output)
	}
	session.Close() // the shutdown completes
	<-exited
	r = probeTCP(t, port, pgCheck)
	if r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "connection refused") {
		t.Fatalf("once stopped: %v %q", r.Outcome, r.Output)
	}
}

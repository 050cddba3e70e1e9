package main

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/healthbridge/healthbridge/health"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// waitProc is a running `healthbridge wait` whose stderr lines arrive on
// lines as they are written.
type waitProc struct {
	cmd    *exec.Cmd
	stdout strings.Builder
	lines  chan string
	done   chan struct{}
	code   int
}

func startWait(t *testing.T, args ...string) *waitProc {
	t.Helper()
	w := &waitProc{cmd: exec.Command(bin(t), append([]string{"wait"}, args...)...), lines: make(chan string, 1000), done: make(chan struct{})}
	w.cmd.Stdout = &w.stdout
	errp, err := w.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(errp)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
		err := w.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ee.ExitCode() >= 0:
			w.code = ee.ExitCode()
		case errors.As(err, &ee):
			w.code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		case err != nil:
			w.code = -1
		}
		close(w.done)
	}()
	t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		<-w.done
	})
	return w
}

// await reads stderr until a line containing s, and returns it.
func (w *waitProc) await(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				t.Fatalf("stderr ended before a line with %q", s)
			}
			if strings.Contains(line, s) {
				return line
			}
		case <-timeout:
			t.Fatalf("no stderr line with %q within a minute", s)
		}
	}
}

// exit waits for the process to end and returns its code and the stderr
// lines not read yet.
func (w *waitProc) exit(t *testing.T) (int, string) {
	t.Helper()
	var rest []string
	timeout := time.After(time.Minute)
	for {
		select {
		case line, ok := <-w.lines:
			if ok {
				rest = append(rest, line)
				continue
			}
			<-w.done
			return w.code, strings.Join(rest, "\n")
		case <-timeout:
			t.Fatal("healthbridge wait did not exit within a minute")
		}
	}
}

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
}

// TestWaitForTargetsThatComeUpLate: a TCP listener that opens later, an
// HTTP server that answers 503 then 200, a gRPC service that turns
// SERVING, a run-dir unit that reports later and a file created later
// (a migration's marker) are waited for in
// parallel; each says what it is waiting for once, then "ready", and the
// command runs (exec'd: same pid) with its own exit code.
func TestWaitForTargetsThatComeUpLate(t *testing.T) {
	tcpAddr := freeAddr(t)
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	rundir := t.TempDir()
	marker := filepath.Join(t.TempDir(), "migrated")
	targets := []string{"tcp://" + tcpAddr, srv.URL + "/healthz", "rundir://" + rundir + "?unit=web", "file://" + marker}
	var hs interface {
		SetServingStatus(string, healthpb.HealthCheckResponse_ServingStatus)
	}
	if !testutil.Lean {
		grpcAddr, s := testutil.GRPCServer(t, true)
		s.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
		hs = s
		targets = append(targets, "grpc://"+grpcAddr+"/db")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	w := startWait(t, append(append([]string{"--interval", "50ms", "--timeout", "0"}, targets...),
		"--", "sh", "-c", `echo $$ > "$0"; echo ran; exit 7`, pidFile)...)
	// Each target is seen failing before it comes up.
	seen := map[string]bool{}
	for len(seen) < len(targets) {
		line := w.await(t, "waiting for ")
		for _, tg := range targets {
			if strings.HasPrefix(line, "waiting for "+tg+":") {
				seen[tg] = true
			}
		}
	}
	ln, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, ln, func(c net.Conn) { c.Close() })
	up.Store(true)
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := health.NewUnit(rundir, "web")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := u.Set(0); err != nil {
		t.Fatal(err)
	}
	if hs != nil {
		hs.SetServingStatus("db", healthpb.HealthCheckResponse_SERVING)
	}
	code, rest := w.exit(t)
	if code != 7 || w.stdout.String() != "ran\n" {
		t.Fatalf("exit %d, stdout %q; want the command's 7 and %q\n%s", code, w.stdout.String(), "ran\n", rest)
	}
	for _, tg := range targets {
		if !strings.Contains(rest, "ready: "+tg+" (") {
			t.Errorf("no ready line for %s in %q", tg, rest)
		}
	}
	if b, _ := os.ReadFile(pidFile); strings.TrimSpace(string(b)) != strconv.Itoa(w.cmd.Process.Pid) {
		t.Errorf("the command ran as pid %s, not in wait's place (%d)", b, w.cmd.Process.Pid)
	}
}

// TestWaitTimesOut: a target that never comes up ends the wait with 124
// after --timeout, naming it and why, and the command never runs.
func TestWaitTimesOut(t *testing.T) {
	addr := freeAddr(t)
	marker := filepath.Join(t.TempDir(), "ran")
	code, _, stderr := runBinary(t, "wait", "--timeout", "1s", "--interval", "100ms", addr, "--", "touch", marker)
	if code != 124 || !strings.Contains(stderr, "timed out after 1s; still waiting for: "+addr+" (") || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran after a timeout")
	}
	// Without a command, success is exit 0.
	up := testutil.Listen(t, func(c net.Conn) { c.Close() })
	if code, _, stderr := runBinary(t, "wait", "-q", "tcp://"+up); code != 0 || stderr != "" {
		t.Fatalf("a listening target: exit %d, stderr %q", code, stderr)
	}
}

// TestWaitInvert: --invert waits until the target fails.
func TestWaitInvert(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, ln, func(c net.Conn) { c.Close() })
	w := startWait(t, "--invert", "--interval", "50ms", "tcp://"+ln.Addr().String())
	w.await(t, "waiting for tcp://"+ln.Addr().String()+" to fail: still passing")
	ln.Close()
	if code, rest := w.exit(t); code != 0 || !strings.Contains(rest, "down: tcp://"+ln.Addr().String()) {
		t.Fatalf("exit %d, stderr %q", code, rest)
	}
}

// TestWaitSignalsReachTheCommand: once exec'd, the command is the process:
// a SIGTERM sent to the pid wait had reaches the command's own handler.
// Before that, a SIGTERM ends the wait with 143 and runs nothing.
func TestWaitSignalsReachTheCommand(t *testing.T) {
	up := testutil.Listen(t, func(c net.Conn) { c.Close() })
	w := startWait(t, "tcp://"+up, "--", "sh", "-c", `trap 'echo got TERM >&2; exit 42' TERM; echo started >&2; while :; do sleep 0.05; done`)
	w.await(t, "started")
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, rest := w.exit(t); code != 42 || !strings.Contains(rest, "got TERM") {
		t.Fatalf("exit %d, stderr %q", code, rest)
	}

	marker := filepath.Join(t.TempDir(), "ran")
	addr := freeAddr(t)
	w = startWait(t, "--timeout", "0", "--interval", "50ms", addr, "--", "touch", marker)
	w.await(t, "waiting for "+addr)
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, rest := w.exit(t); code != 143 || !strings.Contains(rest, "stopped by a signal") {
		t.Fatalf("SIGTERM while waiting: exit %d, stderr %q", code, rest)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran after a SIGTERM")
	}
}

// TestWaitUsageErrors: a bad target or flag is exit 2 before anything is
// tried or run, naming what is wrong.
func TestWaitUsageErrors(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no TARGET to wait for"},
		{[]string{"ftp://x:1"}, `target "ftp://x:1": unknown scheme "ftp://"`},
		{[]string{"tcp://db"}, `target "tcp://db": want tcp://HOST:PORT`},
		{[]string{"tcp://db:1/x"}, "takes no path"},
		{[]string{"rundir://run/app"}, "three slashes"},
		{[]string{"file://tmp/x"}, "want file:///PATH"},
		{[]string{"dns://db?timeout=1s"}, "?timeout= is not a probe flag here"},
		{[]string{"udp://db:1?nope=1"}, "unknown flag: --nope"},
		{[]string{"--timeout", "-1s", "db:1"}, "--timeout: must be ≥ 0"},
		{[]string{"--interval", "0s", "db:1"}, "--interval: must be > 0"},
		{[]string{"--backoff", "linear", "db:1"}, `--backoff: want exponential, got "linear"`},
		{[]string{"--timeout", "5", "db:1"}, "a duration needs a unit"},
		{[]string{"db:1", "--"}, `nothing after "--"`},
	} {
		args := append([]string{"wait"}, c.args...)
		if len(c.args) == 0 || c.args[len(c.args)-1] != "--" {
			args = append(args, "--", "touch", marker)
		}
		code, _, stderr := runBinary(t, args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("wait %q: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command ran after a usage error")
	}
	code, _, stderr := runBinary(t, "wait", testutil.Listen(t, func(c net.Conn) { c.Close() }), "--", "no-such-command-hb")
	if code != 127 || !strings.Contains(stderr, "no-such-command-hb") {
		t.Fatalf("a missing command: exit %d, stderr %q", code, stderr)
	}
}

// TestWaitForAConfigsRole: --config waits for the role's verdict with the
// checks' own thresholds (successThreshold 2 needs two passing runs), and
// leaves out checks of other roles.
func TestWaitForAConfigsRole(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "up")
	cfg := writeConfig(t, `checks:
  - name: app
    exec: {command: [test, -e, `+flag+`]}
    periodSeconds: 1
    successThreshold: 2
    roles: [readiness]
  - name: never
    exec: {command: ["false"]}
    roles: [liveness]
`)
	w := startWait(t, "--config", cfg, "--timeout", "0", "--", "sh", "-c", "echo ran")
	w.await(t, "waiting for check app of --config "+cfg+" (role readiness): ")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, rest := w.exit(t)
	if code != 0 || w.stdout.String() != "ran\n" || !strings.Contains(rest, "ready: --config "+cfg+" (role readiness)") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, w.stdout.String(), rest)
	}
	// The liveness role has a check that never passes: a timeout, naming it.
	code, _, stderr := runBinary(t, "wait", "--config", cfg, "--role", "liveness", "--timeout", "2s")
	if code != 124 || !strings.Contains(stderr, "still waiting for: --config "+cfg+" (role liveness) (never ") {
		t.Fatalf("liveness: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runBinary(t, "wait", "--config", cfg, "--role", "startup")
	if code != 2 || !strings.Contains(stderr, "no check with the startup role") {
		t.Fatalf("startup: exit %d, stderr %q", code, stderr)
	}
}

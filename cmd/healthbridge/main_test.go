package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/proc"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

// bin returns the healthbridge binary under test, built once.
func bin(t *testing.T) string { t.Helper(); return testutil.Binary(t, "../..") }

// child is a running healthbridge.
type child = testutil.Process

func start(t *testing.T, args ...string) *child {
	t.Helper()
	return testutil.Start(t, bin(t), args...)
}

func startQuiet(t *testing.T, port int, args ...string) *child {
	t.Helper()
	return testutil.StartOnPort(t, port, bin(t), args...)
}

func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return testutil.Run(t, bin(t), args...)
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	return testutil.WriteFile(t, "config.yaml", body)
}

// TestSeed000Walkthrough follows exechealthz's README with healthbridge.
func TestSeed000Walkthrough(t *testing.T) {
	file := filepath.Join(t.TempDir(), "test")
	p := start(t, "-cmd", "ls "+file, "-period", "1s", "-port", "0")
	code, body := p.WaitFor(t, "/healthz", func(_ int, body string) bool { return strings.Contains(body, "Result of last exec") })
	if code != 503 || !strings.HasPrefix(body, "Healthz probe error: Result of last exec: ls: ") ||
		!strings.Contains(body, "No such file or directory") || !strings.Contains(body, "error exit status 2") {
		t.Fatalf("before touch: %d %q", code, body)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, body := p.WaitFor(t, "/healthz", func(code int, _ string) bool { return code == 200 }); body != "ok" {
		t.Fatalf("after touch: %q", body)
	}
	// The native endpoints work in this mode too.
	if code, _ := p.Get(t, "/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
}

func TestExechealthzURLPairsAndOutput(t *testing.T) {
	// -quiet hides the "serving" line that start reads, so pick a port.
	port := testutil.FreePort(t)
	p := startQuiet(t, port, "-url=/a", "-cmd=echo hello-a", "-url=/b", "-cmd=echo broken; exit 3", "-output", "-quiet", "-port="+strconv.Itoa(port))
	if _, body := p.WaitFor(t, "/a", func(code int, _ string) bool { return code == 200 }); body != "hello-a\n" {
		t.Fatalf("/a with -output: %q", body)
	}
	code, body := p.WaitFor(t, "/b", func(_ int, body string) bool { return strings.Contains(body, "Result") })
	if code != 503 || !strings.Contains(body, "broken") || !strings.Contains(body, "exit status 3") {
		t.Fatalf("/b: %d %q", code, body)
	}
	if code, _ := p.Get(t, "/healthz-other"); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
	if strings.Contains(p.Logs(), "level=INFO") {
		t.Fatalf("-quiet logged info lines:\n%s", p.Logs())
	}
}

func TestExechealthzBadCommandIsAStartupError(t *testing.T) {
	code, _, stderr := runBinary(t, "-cmd", "no-such-command-hb --x", "-port", "0")
	if code != 2 || !strings.Contains(stderr, `-cmd "no-such-command-hb --x": command "no-such-command-hb" not found`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runBinary(t, "-url=/a", "-cmd=true", "-cmd=true")
	if code != 2 || !strings.Contains(stderr, "-url/-cmd: 1 -url for 2 -cmd") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestValidateAndServeRefuseBadConfig(t *testing.T) {
	bad := writeConfig(t, "checks:\n  - name: a\n    tcpSocket: {port: 0}\n  - name: a\n    exec: {command: [true]}\n    bogus: 1\n")
	// Every problem, not only the first: shape errors, then the semantic
	// ones they do not already cover.
	wantLines := []string{
		bad + ": checks[1].bogus: unknown field",
		bad + ": checks[1].exec.command[0]: must be a string, not true", // YAML's bare true
		bad + ": checks[0].tcpSocket.port: must be 1-65535, got 0",
		bad + ": checks[1].name: duplicate name \"a\" (first used by checks[0])",
	}
	code, _, stderr := runBinary(t, "validate", bad)
	if code != 2 || stderr != strings.Join(wantLines, "\n")+"\n" {
		t.Fatalf("validate: exit %d, stderr %q", code, stderr)
	}
	bad2 := writeConfig(t, "checks:\n  - name: a\n    tcpSocket: {port: 0}\n  - name: a\n    exec: {command: [\"true\"]}\n")
	code, _, stderr = runBinary(t, "validate", bad2)
	want := bad2 + ": checks[0].tcpSocket.port: must be 1-65535, got 0\n" + bad2 + ": checks[1].name: duplicate name \"a\" (first used by checks[0])\n"
	if code != 2 || stderr != want {
		t.Fatalf("validate: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr2 := runBinary(t, "serve", "--config", bad2)
	if code != 2 || stderr2 != want {
		t.Fatalf("serve: exit %d, stderr %q", code, stderr2)
	}
	good := writeConfig(t, "checks: [{name: a, tcpSocket: {port: 1}}]\n")
	if code, out, _ := runBinary(t, "validate", good); code != 0 || !strings.Contains(out, "ok (1 check)") {
		t.Fatalf("valid: exit %d %q", code, out)
	}
	if code, _, stderr := runBinary(t); code != 2 || !strings.Contains(stderr, "--config FILE is required") {
		t.Fatalf("no args: exit %d %q", code, stderr)
	}
}

func TestMissingBinaryIsAStartupError(t *testing.T) {
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks:\n  - name: db\n    exec: {command: [pg_isready_not_here, -q]}\n")
	code, _, stderr := runBinary(t, "--config", cfg)
	if code != 2 || !strings.Contains(stderr, `start-up: checks[0].exec.command[0]: "pg_isready_not_here" not found`) ||
		!strings.Contains(stderr, "(looked in $PATH="+os.Getenv("PATH")+", where healthbridge runs: an exec check runs in healthbridge's own container, not in the app's") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// TestSIGTERM: readiness fails at once, liveness keeps passing, the server
// answers for shutdownDelaySeconds, then the running probe's process group
// is killed and the process exits 0.
func TestSIGTERM(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	ready := filepath.Join(dir, "ready")
	cfg := writeConfig(t, `listen: 127.0.0.1:0
shutdownDelaySeconds: 2
checks:
  - name: ready
    roles: [readiness, liveness]
    exec: {command: [test, -e, `+ready+`]}
    periodSeconds: 1
  - name: slow
    roles: [liveness]
    exec: {command: [sh, -c, "sleep 300 & echo $! > `+pidFile+`; wait"]}
    timeoutSeconds: 120
`)
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "--config", cfg)
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	for deadline := time.Now().Add(15 * time.Second); ; {
		if _, err := os.Stat(pidFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow check never started its background sleep")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, body := p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 503 })
	if !strings.Contains(body, "[-]shutdown failed: shutting down") || time.Since(sent) > 5*time.Second {
		t.Fatalf("readyz after SIGTERM: %d %q after %v", code, body, time.Since(sent))
	}
	if code, _ := p.Get(t, "/livez"); code != 200 {
		t.Fatalf("livez during shutdown delay: %d", code)
	}
	select {
	case <-p.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit")
	}
	took := time.Since(sent)
	if ec := p.Cmd.ProcessState.ExitCode(); ec != 0 {
		t.Fatalf("exit code %d", ec)
	}
	if took < 2*time.Second || took > 4*time.Second {
		t.Fatalf("exited %v after SIGTERM, want shutdownDelaySeconds (2s) + at most 2s", took)
	}
	testutil.AssertPidFileDead(t, pidFile) // the in-flight probe's child
}

func TestVersion(t *testing.T) {
	if code, out, _ := runBinary(t, "version"); code != 0 || !strings.HasPrefix(out, "healthbridge ") {
		t.Fatalf("%d %q", code, out)
	}
}

// TestExechealthzFlagsNeverDropAConfig: an exechealthz flag beside --config,
// or with a subcommand, or without -cmd, is a usage error naming the flag;
// it never silently serves exechealthz's always-healthy default.
func TestExechealthzFlagsNeverDropAConfig(t *testing.T) {
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks: [{name: a, exec: {command: [\"false\"]}}]\n")
	flags := map[string][]string{
		"cmd": {"-cmd", "true"}, "url": {"-url", "/x"}, "period": {"-period", "1s"}, "latency": {"-latency", "5s"},
		"port": {"-port", "0"}, "quiet": {"-quiet"}, "output": {"-output"},
	}
	for name, flag := range flags {
		for _, dashes := range []string{"-", "--"} {
			f := append([]string{dashes + name}, flag[1:]...)
			cases := map[string][]string{
				"after --config":         append([]string{"--config", cfg}, f...),
				"before --config":        append(append([]string{}, f...), "--config", cfg),
				"missing config":         append([]string{"--config", "/nonexistent/hb.yaml"}, f...),
				"serve":                  append([]string{"serve", "--config", cfg}, f...),
				"validate":               append([]string{"validate"}, append(f, cfg)...),
				"check":                  append([]string{"check", "--config", cfg}, f...),
				"probe tcp":              append([]string{"probe", "tcp", "127.0.0.1:1"}, f...),
				"with -cmd and --config": append([]string{"-cmd", "true", "--config", cfg}, f...),
			}
			if name != "cmd" {
				cases["alone without -cmd"] = f
			}
			for what, args := range cases {
				code, stdout, stderr := runBinary(t, args...)
				if code != 2 || !strings.Contains(stderr, "-"+name) || strings.Contains(stdout+stderr, "serving") {
					t.Errorf("%s %s: %q: exit %d, stdout %q, stderr %q", dashes+name, what, args, code, stdout, stderr)
				}
			}
		}
	}
}

// TestProxyVariablesIgnored: as the kubelet, HTTP probes never go through
// a proxy from the environment. Go never proxies loopback targets, so the
// target here is a name that does not resolve: through the proxy it would
// pass (the proxy answers 200); without it, it fails at the lookup.
func TestProxyVariablesIgnored(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proxied.Add(1) }))
	t.Cleanup(proxy.Close)
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nexposeOutput: true\nchecks:\n  - name: web\n    httpGet: {host: proxy-test.invalid, port: 80, path: /}\n    periodSeconds: 1\n    failureThreshold: 1\n")
	env := []string{"HTTP_PROXY=" + proxy.URL, "http_proxy=" + proxy.URL, "HTTPS_PROXY=" + proxy.URL, "NO_PROXY=", "no_proxy="}
	p := testutil.StartEnv(t, bin(t), env, "--config", cfg)
	code, body := p.WaitFor(t, "/readyz/web", func(code int, body string) bool {
		return strings.Contains(body, "internal server error: ") || code == 200
	})
	if code == 200 || proxied.Load() != 0 {
		t.Fatalf("the probe went through the proxy (%d requests): %d %q", proxied.Load(), code, body)
	}
}

// TestHelpIsAnswerNotError: help that was asked for, in any of its forms,
// goes to stdout with exit 0; a bad flag is a usage error on stderr.
func TestHelpIsAnswerNotError(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"serve", "--help"}, {"validate", "--help"},
		{"check", "--help"}, {"probe", "--help"}, {"healthcheck", "--help"}, {"-cmd", "true", "--help"}} {
		code, stdout, stderr := runBinary(t, args...)
		if code != 0 || !strings.Contains(stdout, "Usage") || stderr != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	code, stdout, _ := runBinary(t, "--help")
	for _, word := range []string{"http://", "https://", "tcp", "grpc", "dns", "udp", "rundir", "exec"} {
		if code != 0 || !strings.Contains(stdout, " "+word) {
			t.Errorf("usage omits the probe kind %q: %q", word, stdout)
		}
	}
	code, _, stderr := runBinary(t, "probe", "tcp", "127.0.0.1:1", "--timeout", "5")
	if code != 2 || !strings.Contains(stderr, `a duration needs a unit: write "5s"`) {
		t.Errorf("--timeout 5: exit %d, %q", code, stderr)
	}
	if code, stdout, stderr := runBinary(t, "validate", "--bogus"); code != 2 || stdout != "" || !strings.Contains(stderr, "-bogus") {
		t.Errorf("validate --bogus: exit %d %q %q", code, stdout, stderr)
	}
}

// TestUnreadableConfigHint: a config readable only by root, read as the
// image's uid 65532, fails with a hint that says why.
func TestUnreadableConfigHint(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil || os.Getuid() != 0 {
		t.Skip("SKIP: needs root and setpriv (util-linux) to read the file as another user")
	}
	dir, err := os.MkdirTemp("", "hb-perm") // t.TempDir's parents are not searchable by others
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("checks: [{name: a, tcpSocket: {port: 1}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := bin(t)
	if err := os.Chmod(filepath.Dir(b), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(setpriv, "--reuid", "65532", "--regid", "65532", "--clear-groups", b, "validate", cfg).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "permission denied") ||
		!strings.Contains(string(out), "hint: healthbridge runs as uid 65532") {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestPID1WithoutItsOwnProc: healthbridge as PID 1 of a new pid namespace
// whose /proc is still the parent's (unshare --pid --fork, no
// --mount-proc). /proc shows host pids; the reaper maps them through NSpid
// and still reaps the orphans its exec checks leave.
func TestPID1WithoutItsOwnProc(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Getuid() != 0 {
		t.Skip("SKIP: needs root and unshare (util-linux) for a pid namespace")
	}
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks:\n  - name: orphans\n    exec: {command: [sh, -c, \"sleep 30 & exit 0\"]}\n    periodSeconds: 1\n")
	p := testutil.Start(t, unshare, "--pid", "--fork", "--kill-child", bin(t), "--log-level", "debug", "--config", cfg)
	logs := func() string { return p.Logs() }
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs(), "reaping orphans through NSpid"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no word about /proc being another namespace's:\n%s", logs())
		}
	}
	// healthbridge's pid as this (the host's) /proc shows it.
	hb := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, ppid, ok := proc.ReadStat("/proc/" + e.Name() + "/stat"); ok && ppid == p.Cmd.Process.Pid {
			hb, _ = strconv.Atoi(e.Name())
		}
	}
	if hb == 0 {
		t.Fatal("healthbridge not found under unshare")
	}
	zombies := func() int {
		n := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if st, ppid, ok := proc.ReadStat("/proc/" + e.Name() + "/stat"); ok && ppid == hb && st == 'Z' {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(logs(), "reaped orphans"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nothing reaped in 15s (%d zombies):\n%s", zombies(), logs())
		}
	}
	// Orphans keep coming every second; each is reaped: once several more
	// have been reaped, the count of zombies has not built up.
	reaped := func() int {
		n := 0
		for _, m := range regexp.MustCompile(`msg="reaped orphans" count=(\d+)`).FindAllStringSubmatch(logs(), -1) {
			c, _ := strconv.Atoi(m[1])
			n += c
		}
		return n
	}
	for deadline, want := time.Now().Add(30*time.Second), reaped()+3; reaped() < want; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d reaped, want %d within 30s:\n%s", reaped(), want, logs())
		}
	}
	if n := zombies(); n > 2 {
		t.Fatalf("%d zombie children of healthbridge (host pid %d)", n, hb)
	}
}

// TestGOGCDefault: healthbridge runs its collector at Go's GOGC 100
// unless $GOGC is set, and takes $GOMEMLIMIT as the runtime does, as the
// Go runtime reports them in go_gc_gogc_percent and go_gc_gomemlimit_bytes
// (the limit taken from a cgroup: internal/idlegc's test).
func TestGOGCDefault(t *testing.T) {
	testutil.NeedFull(t, "the Go runtime metrics")
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks:\n  - {name: t, exec: {command: [\"true\"]}}\n")
	for env, want := range map[string]string{
		"GOGC=":             "go_gc_gogc_percent 100\n",
		"GOGC=80":           "go_gc_gogc_percent 80\n",
		"GOMEMLIMIT=100MiB": "go_gc_gomemlimit_bytes 1.048576e+08\n",
	} {
		p := testutil.StartEnv(t, bin(t), []string{env}, "--config", cfg)
		if _, body := p.WaitFor(t, "/metrics", func(code int, _ string) bool { return code == 200 }); !strings.Contains(body, want) {
			name, _, _ := strings.Cut(want, " ")
			i := max(strings.Index(body, name+" "), 0)
			t.Errorf("%s: want %q, /metrics has %q", env, want, body[i:min(len(body), i+50)])
		}
	}
}

// TestMetricsByBuild: /metrics has healthbridge's families in every build;
// the Go runtime's and the process's only in the full one (the lean build
// links no Prometheus client).
func TestMetricsByBuild(t *testing.T) {
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks:\n  - {name: t, exec: {command: [\"true\"]}}\n")
	p := start(t, "--config", cfg)
	_, body := p.WaitFor(t, "/metrics", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, `healthbridge_check_up{check="t",kind="exec"} 1`)
	})
	if got := strings.Contains(body, "\ngo_goroutines "); got == testutil.Lean {
		t.Fatalf("go_goroutines present: %v, lean build: %v", got, testutil.Lean)
	}
}

// TestSIGHUPDoesNotKill: SIGHUP (systemd's ExecReload, a supervisor's
// reload) used to end `healthbridge serve` silently, the default action.
// It reloads the config file, and serving goes on; in a drop-in mode,
// with no file to reload, it is logged.
func TestSIGHUPDoesNotKill(t *testing.T) {
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks: [{name: a, exec: {command: [\"true\"]}, periodSeconds: 1}]\n")
	port := testutil.FreePort(t)
	for _, tc := range []struct {
		args []string
		port int
		log  string
	}{
		{[]string{"--config", cfg}, 0, "msg=\"config reloaded\" trigger=signal"},
		{[]string{"-cmd", "true", "-port", strconv.Itoa(port)}, port, "no config file to reload"},
	} {
		p := startQuiet(t, tc.port, tc.args...)
		for i := 0; i < 2; i++ {
			if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(p.Logs(), tc.log) {
			select {
			case <-p.Done:
				t.Fatalf("%v: healthbridge exited on SIGHUP: %s", tc.args, p.Logs())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: no %q log line: %s", tc.args, tc.log, p.Logs())
			}
		}
		if code, _ := p.Get(t, "/livez"); code != 200 {
			t.Fatalf("%v: /livez after SIGHUP: %d", tc.args, code)
		}
	}
}

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/idlegc"
	"github.com/healthbridge/healthbridge/internal/proc"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// runInit starts `healthbridge run ARGS` as a plain process and returns it
// with its stdout and stderr collectors.
func runInit(t *testing.T, args ...string) (*exec.Cmd, *strings.Builder, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(bin(t), append([]string{"run"}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.KillTree(cmd.Process.Pid); _, _ = cmd.Process.Wait() })
	return cmd, &out, &errb
}

// waitExit waits (bounded) for cmd and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, limit time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("healthbridge run did not exit within %v", limit)
		return -1
	}
}

// waitFile waits (bounded) until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
	}
}

// TestRunExitCodesAndStdio: the child's own stdio; its exit code, or
// 128+N when signal N killed it.
func TestRunExitCodesAndStdio(t *testing.T) {
	cmd, out, errb := runInit(t, "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
	if code := waitExit(t, cmd, 15*time.Second); code != 7 {
		t.Fatalf("exit %d, want 7 (%s)", code, errb)
	}
	if out.String() != "to-stdout\n" || !strings.Contains(errb.String(), "to-stderr") {
		t.Fatalf("stdout %q, stderr %q", out, errb)
	}
	cmd, _, _ = runInit(t, "--", "sh", "-c", "kill -9 $$")
	if code := waitExit(t, cmd, 15*time.Second); code != 128+9 {
		t.Fatalf("killed by SIGKILL: exit %d, want 137", code)
	}
	if code, _, stderr := runBinary(t, "run"); code != 2 || !strings.Contains(stderr, "no command") {
		t.Fatalf("no command: exit %d %q", code, stderr)
	}
}

// TestRunForwardsSignals: SIGUSR1 and SIGTERM reach the child; with
// --signal-group, its whole process group.
func TestRunForwardsSignals(t *testing.T) {
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	script := `trap 'echo usr1 >> ` + got + `' USR1; trap 'echo term >> ` + got + `; exit 5' TERM; touch ` + ready + `; while :; do sleep 0.05; done`
	cmd, _, errb := runInit(t, "--", "sh", "-c", script)
	waitFile(t, ready)
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(got); strings.Contains(string(b), "usr1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGUSR1 never reached the child")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 15*time.Second); code != 5 {
		t.Fatalf("exit %d, want the child's 5 (%s)", code, errb)
	}

	// --signal-group: a grandchild in the child's group gets SIGTERM too.
	pidFile := filepath.Join(dir, "grandchild")
	cmd, _, _ = runInit(t, "--signal-group", "--", "sh", "-c", "sleep 300 & echo $! > "+pidFile+"; wait")
	// The pid is complete once its line ends.
	var grandchild int
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(pidFile); strings.HasSuffix(string(b), "\n") {
			var err error
			if grandchild, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the grandchild's pid never appeared")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, 15*time.Second)
	for deadline := time.Now().Add(10 * time.Second); proc.Running(grandchild); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(grandchild, syscall.SIGKILL)
			t.Fatal("the grandchild in the child's group did not get SIGTERM")
		}
	}
}

// TestRunWithChecksStopsInOrder: on SIGTERM readiness fails first, the
// server answers through shutdownDelaySeconds, only then does the child
// get SIGTERM, and healthbridge exits with the child's code. A child that
// ignores SIGTERM is killed after terminationGracePeriodSeconds.
func TestRunWithChecksStopsInOrder(t *testing.T) {
	dir := t.TempDir()
	ready, termAt := filepath.Join(dir, "ready"), filepath.Join(dir, "term-at")
	cfg := writeConfig(t, `listen: 127.0.0.1:0
shutdownDelaySeconds: 2
terminationGracePeriodSeconds: 1
checks:
  - name: child
    exec: {command: [test, -e, `+ready+`]}
    periodSeconds: 1
`)
	script := `trap 'date +%s%N > ` + termAt + `; exit 3' TERM; touch ` + ready + `; while :; do sleep 0.05; done`
	p := testutil.Start(t, bin(t), "run", "--config", cfg, "--", "sh", "-c", script)
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	sent := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 503 })
	failedAt := time.Now()
	if _, err := os.Stat(termAt); err == nil {
		t.Fatal("the child got SIGTERM before readiness failed")
	}
	if code := exitCodeWithin(t, p, 20*time.Second, "did not exit"); code != 3 {
		t.Fatalf("exit %d, want the child's 3:\n%s", code, p.Logs())
	}
	b, err := os.ReadFile(termAt)
	if err != nil {
		t.Fatalf("the child never got SIGTERM: %v", err)
	}
	ns, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	childTerm := time.Unix(0, ns)
	if childTerm.Before(failedAt.Add(-time.Second)) || childTerm.Sub(sent) < 2*time.Second {
		t.Fatalf("child got SIGTERM %v after the signal (readiness failed after %v), want after the 2s shutdown delay",
			childTerm.Sub(sent), failedAt.Sub(sent))
	}
	testutil.Report(t, "healthbridge run: SIGTERM -> /readyz 503 after %v, child SIGTERM after %v (shutdownDelaySeconds 2)",
		failedAt.Sub(sent).Round(time.Millisecond), childTerm.Sub(sent).Round(time.Millisecond))

	// A child that ignores SIGTERM: its group is killed after the grace.
	os.Remove(ready)
	cfg2 := writeConfig(t, "listen: 127.0.0.1:0\nterminationGracePeriodSeconds: 1\nchecks: [{name: a, exec: {command: [\"true\"]}}]\n")
	p2 := testutil.Start(t, bin(t), "run", "--config", cfg2, "--", "sh", "-c", "trap '' TERM; touch "+ready+"; while :; do sleep 0.05; done")
	waitFile(t, ready)
	if err := p2.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p2.Done:
	case <-time.After(20 * time.Second):
		t.Fatal("a child that ignores SIGTERM kept healthbridge running")
	}
	if code := p2.Cmd.ProcessState.ExitCode(); code != 128+9 {
		t.Fatalf("exit %d, want 137 (SIGKILL after the grace)", code)
	}
}

// TestRunChildExitsByItself: healthbridge ends with the child (restart
// policy Never, as tini), with its exit code, without a shutdown delay.
func TestRunChildExitsByItself(t *testing.T) {
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nshutdownDelaySeconds: 30\ncommand: [sh, -c, \"sleep 1; exit 4\"]\nchecks: [{name: a, exec: {command: [\"true\"]}}]\n")
	p := testutil.Start(t, bin(t), "run", "--config", cfg)
	if code := exitCodeWithin(t, p, 20*time.Second, "healthbridge outlived its child"); code != 4 {
		t.Fatalf("exit %d, want the child's 4:\n%s", code, p.Logs())
	}
}

// TestRunSignalTable: each signal tini and dumb-init forward reaches the
// child, which records what it gets.
func TestRunSignalTable(t *testing.T) {
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	names := []string{"HUP", "INT", "QUIT", "USR1", "USR2", "WINCH", "TERM"}
	var traps strings.Builder
	for _, n := range names {
		exit := ""
		if n == "TERM" {
			exit = "; exit 0"
		}
		traps.WriteString("trap 'echo " + n + " >> " + got + exit + "' " + n + "; ")
	}
	cmd, _, errb := runInit(t, "--", "sh", "-c", traps.String()+"touch "+ready+"; while :; do sleep 0.05; done")
	waitFile(t, ready)
	sigs := map[string]syscall.Signal{"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
		"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "WINCH": syscall.SIGWINCH, "TERM": syscall.SIGTERM}
	for i, n := range names {
		if err := cmd.Process.Signal(sigs[n]); err != nil {
			t.Fatal(err)
		}
		// One at a time: signals of one kind coalesce.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			b, _ := os.ReadFile(got)
			if strings.Count(string(b), "\n") > i {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("SIG%s never reached the child (got %q)", n, b)
			}
		}
	}
	if code := waitExit(t, cmd, 15*time.Second); code != 0 {
		t.Fatalf("exit %d (%s)", code, errb)
	}
	if b, _ := os.ReadFile(got); string(b) != strings.Join(names, "\n")+"\n" {
		t.Fatalf("the child recorded %q", b)
	}
}

// TestRunAsPID1ReapsDoubleForks: as PID 1 of a new pid namespace with its
// own /proc, a child that double-forks leaves no zombie, and its own exit
// status is kept.
func TestRunAsPID1ReapsDoubleForks(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Getuid() != 0 {
		t.Skip("SKIP: needs root and unshare (util-linux) for a pid namespace")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "zombies")
	// Ten double forks (each grandchild orphaned at once, exiting soon),
	// then count the zombies in this namespace's /proc before exiting 3.
	script := `for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.2 &) ; done; sleep 2; ` +
		`grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l > ` + out + `; exit 3`
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "--kill-child", bin(t), "run", "--", "sh", "-c", script)
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.KillTree(cmd.Process.Pid); _, _ = cmd.Process.Wait() })
	if code := waitExit(t, cmd, 30*time.Second); code != 3 {
		t.Fatalf("exit %d, want the child's 3 (%s)", code, errb.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.TrimSpace(string(b)); n != "0" {
		t.Fatalf("%s zombies left in the namespace", n)
	}
}

// countLines is the number of lines in path (0 when it does not exist).
func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// waitLines waits (bounded) until path has n lines.
func waitLines(t *testing.T, path string, n int, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); countLines(path) < n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines after %v, want %d", path, countLines(path), limit, n)
		}
	}
}

// TestRunRestartPolicies: restartPolicy Always restarts a child that
// exits, after the CrashLoopBackOff's first 10 s, and says so in JSON and
// metrics; OnFailure does not restart a child that exits 0.
func TestRunRestartPolicies(t *testing.T) {
	starts := filepath.Join(t.TempDir(), "starts")
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nrestartPolicy: Always\nchecks: [{name: a, exec: {command: [\"true\"]}, periodSeconds: 1}]\n")
	p := testutil.Start(t, bin(t), "run", "--config", cfg, "--", "sh", "-c", "echo start >> "+starts+"; sleep 0.3; exit 3")
	// The first restart is at once (the kubelet's CrashLoopBackOff), the
	// next after 10 s.
	waitLines(t, starts, 2, 15*time.Second)
	second := time.Now()
	waitLines(t, starts, 3, 30*time.Second)
	took := time.Since(second)
	if took < 10*time.Second {
		t.Fatalf("second restart %v after the second start, before the 10 s backoff", took)
	}
	testutil.Report(t, "healthbridge run: restartPolicy Always: second restart %v after the second start (CrashLoopBackOff: at once, then 10 s)", took.Round(time.Millisecond))
	_, body := p.Get(t, "/healthz?format=json")
	if !strings.Contains(body, `"exit": 2`) || !strings.Contains(body, `"lastExitCode": 3`) || !strings.Contains(body, `"backoffSeconds": 20`) {
		t.Fatalf("JSON child: %s", body)
	}
	_, metrics := p.Get(t, "/metrics")
	if !strings.Contains(metrics, `healthbridge_child_restarts_total{reason="exit"} 2`) {
		t.Fatalf("metrics: %s", metrics)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done:
	case <-time.After(20 * time.Second):
		t.Fatal("did not stop")
	}

	cfg = writeConfig(t, "listen: 127.0.0.1:0\nrestartPolicy: OnFailure\nchecks: [{name: a, exec: {command: [\"true\"]}}]\n")
	p = testutil.Start(t, bin(t), "run", "--config", cfg, "--", "true")
	if code := exitCodeWithin(t, p, 20*time.Second, "OnFailure restarted (or waited on) a child that exited 0"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Logs())
	}
}

// TestRunOnLivenessFailure: restart stops the child and starts it again
// (checks back to starting meanwhile, readiness failing), exit ends
// healthbridge with 75.
func TestRunOnLivenessFailure(t *testing.T) {
	dir := t.TempDir()
	live, starts := filepath.Join(dir, "live"), filepath.Join(dir, "starts")
	check := "checks:\n  - {name: alive, exec: {command: [test, -e, " + live + "]}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}\n"
	script := "touch " + live + "; echo start >> " + starts + "; while :; do sleep 0.05; done"

	cfg := writeConfig(t, "listen: 127.0.0.1:0\nonLivenessFailure: restart\nterminationGracePeriodSeconds: 2\n"+check)
	p := testutil.Start(t, bin(t), "run", "--config", cfg, "--", "sh", "-c", script)
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	if err := os.Remove(live); err != nil {
		t.Fatal(err)
	}
	// The checks are back to starting while the child is down.
	failed := time.Now()
	waitLines(t, starts, 2, 30*time.Second)
	testutil.Report(t, "healthbridge run: liveness failure (period 1 s, failureThreshold 1, timeout 1 s) -> child restarted in place after %v", time.Since(failed).Round(time.Millisecond))
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	if _, body := p.Get(t, "/healthz?format=json"); !strings.Contains(body, `"liveness": 1`) {
		t.Fatalf("JSON child: %s", body)
	}

	os.Remove(live)
	cfg = writeConfig(t, "listen: 127.0.0.1:0\nonLivenessFailure: exit\nterminationGracePeriodSeconds: 2\n"+check)
	p = testutil.Start(t, bin(t), "run", "--config", cfg, "--", "sh", "-c", script)
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	if err := os.Remove(live); err != nil {
		t.Fatal(err)
	}
	if code := exitCodeWithin(t, p, 20*time.Second, "did not exit on liveness failure"); code != 75 {
		t.Fatalf("exit %d, want 75:\n%s", code, p.Logs())
	}
}

// TestRunTellsTheChildItsRundir: the child's environment names the rundir
// check's directory and unit, so an application writes where it is read.
func TestRunTellsTheChildItsRundir(t *testing.T) {
	rundir := t.TempDir()
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks:\n  - {name: app, rundir: {path: "+rundir+", unit: worker}, periodSeconds: 1}\n")
	script := `d="$HEALTHBRIDGE_RUNDIR/$HEALTHBRIDGE_UNIT"; mkdir -p "$d"; echo $$ > "$d/pid"; echo 0 > "$d/error"; while :; do sleep 0.05; done`
	p := testutil.Start(t, bin(t), "run", "--config", cfg, "--", "sh", "-c", script)
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	if _, err := os.Stat(filepath.Join(rundir, "worker", "pid")); err != nil {
		t.Fatal(err)
	}
}

// TestRunRundirChecksTheChildsPid: under `run`, a rundir check's pid check
// is the child's. A state left behind naming another live process (here
// the test itself, which a plain rundir check would call healthy) fails;
// the child's own pid, or a descendant's, passes.
func TestRunRundirChecksTheChildsPid(t *testing.T) {
	rundir := t.TempDir()
	unit := filepath.Join(rundir, "worker")
	if err := os.MkdirAll(unit, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"pid": strconv.Itoa(os.Getpid()) + "\n", "error": "0\n"} {
		if err := os.WriteFile(filepath.Join(unit, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Sanity: outside run mode the same state is healthy.
	if code, out, errb := runBinary(t, "probe", "rundir", rundir, "--unit", "worker"); code != 0 {
		t.Fatalf("probe rundir on a live pid: exit %d %q %q", code, out, errb)
	}
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nexposeOutput: true\nchecks:\n  - {name: app, rundir: {path: "+rundir+", unit: worker}, periodSeconds: 1, failureThreshold: 1}\n")
	gate := filepath.Join(t.TempDir(), "go")
	// The child waits for the gate, then a grandchild (a descendant) writes
	// its own pid.
	script := `while [ ! -e "` + gate + `" ]; do sleep 0.05; done; sh -c 'echo $$ > "$HEALTHBRIDGE_RUNDIR/$HEALTHBRIDGE_UNIT/pid"; while :; do sleep 0.05; done'`
	p := testutil.Start(t, bin(t), "run", "--config", cfg, "--", "sh", "-c", script)
	p.WaitFor(t, "/readyz/app?format=json", func(code int, body string) bool {
		return code == 503 && strings.Contains(body, "not the supervised command")
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(t, "/readyz/app", func(code int, _ string) bool { return code == 200 })
}

// TestRunStartupFailureRestartsTheChild: a startup check that fails
// failureThreshold times in a row acts as a failed liveness verdict does
// (the kubelet kills a container whose startup probe fails): restart
// counts a "startup" restart, exit ends healthbridge with 75.
func TestRunStartupFailureRestartsTheChild(t *testing.T) {
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	check := "checks:\n  - {name: boot, roles: [startup], exec: {command: [test, -e, " + filepath.Join(dir, "never") + "]}, periodSeconds: 1, failureThreshold: 2}\n" +
		"  - {name: alive, exec: {command: [\"true\"]}, periodSeconds: 1}\n"
	script := "echo start >> " + starts + "; while :; do sleep 0.05; done"

	cfg := writeConfig(t, "listen: 127.0.0.1:0\nonLivenessFailure: restart\nterminationGracePeriodSeconds: 2\n"+check)
	p := testutil.Start(t, bin(t), "run", "--config", cfg, "--", "sh", "-c", script)
	waitLines(t, starts, 2, 30*time.Second)
	p.WaitFor(t, "/metrics", func(_ int, body string) bool {
		return strings.Contains(body, `healthbridge_child_restarts_total{reason="startup"} 1`)
	})
	if !strings.Contains(p.Logs(), `a startup check failed: restarting the child`) {
		t.Fatalf("no log line names the startup failure:\n%s", p.Logs())
	}

	cfg = writeConfig(t, "listen: 127.0.0.1:0\nonLivenessFailure: exit\nterminationGracePeriodSeconds: 2\n"+check)
	p = testutil.Start(t, bin(t), "run", "--config", cfg, "--", "sh", "-c", script)
	if code := exitCodeWithin(t, p, 30*time.Second, "did not exit on a failed startup check"); code != 75 {
		t.Fatalf("exit %d, want 75:\n%s", code, p.Logs())
	}
}

// TestRunSignalsWhileStopping: while the child is being stopped (it
// ignores SIGTERM, the grace is 60 s) other signals are still forwarded,
// and a second SIGTERM cuts the grace short: the child's group gets
// SIGKILL at once.
func TestRunSignalsWhileStopping(t *testing.T) {
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nterminationGracePeriodSeconds: 60\nchecks: [{name: a, exec: {command: [\"true\"]}, periodSeconds: 1}]\n")
	script := `trap 'echo term >> ` + got + `' TERM; trap 'echo usr1 >> ` + got + `' USR1; touch ` + ready + `; while :; do sleep 0.05; done`
	p := testutil.Start(t, bin(t), "run", "--config", cfg, "--", "sh", "-c", script)
	waitFile(t, ready)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLines(t, got, 1, 15*time.Second) // "term": the child is being stopped
	if err := p.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitLines(t, got, 2, 15*time.Second)
	if b, _ := os.ReadFile(got); string(b) != "term\nusr1\n" {
		t.Fatalf("the child got %q, want term then usr1", b)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCodeWithin(t, p, 20*time.Second, "a second SIGTERM did not cut the grace short"); code != 128+9 { // well under the 60 s grace
		t.Fatalf("exit %d, want 137 (the child killed):\n%s", code, p.Logs())
	}
}

// TestRunWithChecksRunsTheIdleCollector: `run --config` trims its memory
// as every other mode does (idlegc: its first look, one Interval after
// start, says so at debug level).
func TestRunWithChecksRunsTheIdleCollector(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks: [{name: a, exec: {command: [\"true\"]}, periodSeconds: 1}]\n")
	p := testutil.Start(t, bin(t), "run", "--log-level", "debug", "--config", cfg, "--", "sleep", "300")
	deadline := time.Now().Add(idlegc.Interval + 20*time.Second)
	for !strings.Contains(p.Logs(), "idle collector: first look") {
		if time.Now().After(deadline) {
			t.Fatalf("no idle collector look within %v:\n%s", idlegc.Interval+20*time.Second, p.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exitCodeWithin waits (bounded by limit) for p to exit and returns its exit
// code; what says what did not happen if it does not exit.
func exitCodeWithin(t *testing.T, p *testutil.Process, limit time.Duration, what string) int {
	t.Helper()
	select {
	case <-p.Done:
	case <-time.After(limit):
		t.Fatalf("%s within %v:\n%s", what, limit, p.Logs())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// TestRunReloadSignal: with --reload-signal SIGHUP, SIGHUP reloads the
// config (a check added to the file appears) and does not reach the
// child, while other signals still do; without it SIGHUP goes to the
// child (TestRunSignalTable). A bad signal name or no config is a usage
// error before anything starts.
func TestRunReloadSignal(t *testing.T) {
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	body := "listen: 127.0.0.1:0\nchecks:\n  - {name: a, exec: {command: [\"true\"]}, periodSeconds: 1}\n"
	cfg := writeConfig(t, body)
	script := `trap 'echo hup >> ` + got + `' HUP; trap 'echo usr1 >> ` + got + `' USR1; touch ` + ready + `; while :; do sleep 0.05; done`
	p := testutil.Start(t, bin(t), "run", "--config", cfg, "--reload-signal", "SIGHUP", "--", "sh", "-c", script)
	waitFile(t, ready)
	p.WaitFor(t, "/readyz?verbose", func(code int, body string) bool { return code == 200 && strings.Contains(body, "[+]a ok") })
	if err := os.WriteFile(cfg, []byte(body+"  - {name: b, exec: {command: [\"true\"]}, periodSeconds: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(t, "/readyz?verbose", func(code int, body string) bool { return code == 200 && strings.Contains(body, "[+]b ok") })
	// SIGUSR1 still reaches the child; once it has, a forwarded SIGHUP
	// (sent before it) would have too.
	if err := p.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(got)
		if strings.Contains(string(b), "usr1") {
			if strings.Contains(string(b), "hup") {
				t.Fatalf("the reload signal reached the child: %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGUSR1 never reached the child")
		}
	}

	for _, tc := range [][]string{
		{"run", "--config", cfg, "--reload-signal", "SIGTERM", "--", "true"},
		{"run", "--reload-signal", "SIGHUP", "--", "true"},
	} {
		out, err := exec.Command(bin(t), tc...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--reload-signal") {
			t.Errorf("%v: %v %q, want exit 2 naming --reload-signal", tc, err, out)
		}
	}
}

package e2e

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

// docker runs the docker CLI, bounded in time, and returns its trimmed
// stdout; it fails the test on a non-zero exit.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerErr(args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func dockerErr(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return stdout.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(stdout.String()), nil
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		return "", fmt.Errorf("timed out")
	}
}

// needDocker skips, with the reason, only when `docker info` fails.
func needDocker(t *testing.T) {
	t.Helper()
	_, err := dockerErr("info", "--format", "{{.ServerVersion}}")
	testutil.Need(t, err == nil, fmt.Sprintf("no usable Docker engine here (docker info: %v)", err), "start the Docker engine")
}

// isStatic reports whether the ELF file at path has no program
// interpreter, i.e. can run in a FROM scratch image.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

var (
	imageOnce sync.Once
	imageErr  error
)

// testImage is healthbridge plus a static busybox (sh, httpd, sleep,
// setsid, …) FROM scratch, built from files on the host: the engine cannot
// pull anything.
// Tags are unique to this test process, so two runs on one host never
// collide, and removeTestImages removes them at the end.
var (
	testImage   = fmt.Sprintf("healthbridge-e2e:test-%d", os.Getpid())
	deployImage = fmt.Sprintf("healthbridge:e2e-%d", os.Getpid())
)

// removeTestImages removes the images this process built, if any. Called
// from TestMain.
func removeTestImages() {
	for _, tag := range []string{testImage, deployImage} {
		_, _ = dockerErr("rmi", "--force", tag)
	}
}

func buildTestImage(t *testing.T) {
	t.Helper()
	needDocker(t)
	imageOnce.Do(func() {
		bb, err := exec.LookPath("busybox")
		if err != nil || !isStatic(bb) {
			imageErr = errNoBusybox
			return
		}
		ctx, err := os.MkdirTemp("", "hb-image")
		if err != nil {
			imageErr = err
			return
		}
		defer os.RemoveAll(ctx)
		for src, dst := range map[string]string{testutil.StaticBinary(t, ".."): "healthbridge", bb: "busybox"} {
			b, err := os.ReadFile(src)
			if err == nil {
				err = os.WriteFile(filepath.Join(ctx, dst), b, 0o755)
			}
			if err != nil {
				imageErr = err
				return
			}
		}
		df := `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY healthbridge /healthbridge
ENTRYPOINT ["/healthbridge"]
`
		if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
			imageErr = err
			return
		}
		_, imageErr = dockerErr("build", "-q", "-t", testImage, ctx)
	})
	testutil.Need(t, imageErr != errNoBusybox, "no static busybox for the test image", "apt-get install busybox-static")
	if imageErr != nil {
		t.Fatal(imageErr)
	}
}

var (
	deployOnce sync.Once
	deployOut  string
	deployErr  error
)

// buildDeployImage builds the product image (deploy/build-image.sh) as
// deployImage, once per test process, and returns the script's output.
// removeTestImages removes it at the end.
func buildDeployImage(t *testing.T) string {
	t.Helper()
	needDocker(t)
	deployOnce.Do(func() {
		out, err := exec.Command("../deploy/build-image.sh", deployImage).CombinedOutput()
		deployOut = string(out)
		if err != nil {
			deployErr = fmt.Errorf("build-image.sh: %v\n%s", err, out)
		}
	})
	if deployErr != nil {
		t.Fatal(deployErr)
	}
	return deployOut
}

// errNoBusybox: the test image needs a static busybox from the host.
var errNoBusybox = errors.New("no static busybox")

// runContainer starts a detached container and removes it at the end.
func runContainer(t *testing.T, args ...string) string {
	t.Helper()
	id := docker(t, append([]string{"run", "-d"}, args...)...)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command("docker", "logs", "--tail", "50", id).CombinedOutput()
			t.Logf("container %s logs:\n%s", id[:12], logs)
		}
		_, _ = dockerErr("rm", "-f", id)
	})
	return id
}

type health struct {
	Status        string
	FailingStreak int
	Log           []struct {
		ExitCode int
		Output   string
	}
}

func inspectHealth(t *testing.T, id string) health {
	t.Helper()
	var h health
	out := docker(t, "inspect", "--format", "{{json .State.Health}}", id)
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("inspect %q: %v", out, err)
	}
	return h
}

// waitHealth polls docker inspect until the status is want; it returns
// when that happened, failing after limit.
func waitHealth(t *testing.T, id, want string, limit time.Duration) time.Time {
	t.Helper()
	start := time.Now()
	for {
		h := inspectHealth(t, id)
		if h.Status == want {
			return time.Now()
		}
		if time.Since(start) > limit {
			t.Fatalf("health %q after %v, want %q within %v (log %+v)", h.Status, time.Since(start), want, limit, h.Log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDockerHealthcheckSemantics: Docker itself runs `healthbridge probe`
// as the HEALTHCHECK of a busybox httpd that is down, then up, then down;
// docker inspect shows starting -> healthy -> unhealthy when interval,
// timeout, retries and start-period predict, and docker events shows exactly
// one health_status event per change.
func TestDockerHealthcheckSemantics(t *testing.T) {
	buildTestImage(t)
	const (
		interval    = time.Second
		timeout     = time.Second
		retries     = 2
		startPeriod = 5 * time.Second
	)
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	// The service: busybox httpd serving /www; the page is "up" once
	// /www/index.html exists (404 before, which fails the probe).
	id := runContainer(t,
		"--network", "none",
		"--health-cmd", "/healthbridge probe http://127.0.0.1:8000/index.html --timeout 1s",
		"--health-interval", interval.String(), "--health-timeout", timeout.String(),
		"--health-retries", strconv.Itoa(retries), "--health-start-period", startPeriod.String(),
		"--entrypoint", "/bin/sh", testImage, "-c", "mkdir -p /www && exec httpd -f -p 127.0.0.1:8000 -h /www")

	// Down during the start period: failures are not counted.
	time.Sleep(2500 * time.Millisecond)
	h := inspectHealth(t, id)
	if h.Status != "starting" || len(h.Log) == 0 || h.Log[len(h.Log)-1].ExitCode != 1 || h.FailingStreak != 0 {
		t.Fatalf("within the start period: %+v", h)
	}

	docker(t, "exec", id, "sh", "-c", "echo ok > /www/index.html")
	up := time.Now()
	healthyAt := waitHealth(t, id, "healthy", interval+timeout+2*time.Second)
	testutil.Report(t, "service up -> docker healthy after %v (bound: interval %v + timeout %v)", healthyAt.Sub(up).Round(time.Millisecond), interval, timeout)

	docker(t, "exec", id, "rm", "/www/index.html")
	down := time.Now()
	bound := time.Duration(retries)*interval + timeout
	unhealthyAt := waitHealth(t, id, "unhealthy", bound+2*time.Second)
	took := unhealthyAt.Sub(down)
	if took < time.Duration(retries-1)*interval {
		t.Fatalf("unhealthy after %v: sooner than %d retries allow", took, retries)
	}
	testutil.Report(t, "service down -> docker unhealthy after %v (bound: retries %d × interval %v + timeout %v = %v)", took.Round(time.Millisecond), retries, interval, timeout, bound)
	h = inspectHealth(t, id)
	if last := h.Log[len(h.Log)-1]; last.ExitCode != 1 || !strings.Contains(last.Output, "statuscode: 404") {
		t.Fatalf("last probe: %+v", last)
	}

	// Exactly one health_status event per change: healthy, unhealthy.
	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	time.Sleep(1100 * time.Millisecond) // let "until" pass so the stream ends
	events := docker(t, "events", "--since", since, "--until", until,
		"--filter", "container="+id, "--filter", "event=health_status", "--format", "{{.Status}}")
	var got []string
	for _, l := range strings.Split(events, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			got = append(got, strings.TrimPrefix(l, "health_status: "))
		}
	}
	if strings.Join(got, ",") != "healthy,unhealthy" {
		t.Fatalf("health_status events %q, want exactly healthy then unhealthy", got)
	}
}

// TestDockerPID1ReapsOrphans: healthbridge as the container's PID 1 runs
// exec checks that leave orphans behind, a few hundred runs; afterwards no
// zombie is left and every probe reported its true exit code.
func TestDockerPID1ReapsOrphans(t *testing.T) {
	buildTestImage(t)
	var cfg strings.Builder
	cfg.WriteString("listen: 127.0.0.1:8080\nexposeOutput: true\nchecks:\n")
	const workers = 10
	for i := 0; i < workers; i++ {
		// One orphan stays in the probe's group (killed and reaped), one
		// escapes it with setsid and outlives the run (reaped by PID 1).
		fmt.Fprintf(&cfg, "  - name: orphans-%d\n    exec: {command: [sh, -c, \"sleep 0.2 & setsid sleep 0.3 & exit 0\"]}\n    periodSeconds: 1\n", i)
	}
	cfg.WriteString("  - name: seven\n    exec: {command: [sh, -c, \"setsid sleep 0.1 & exit 7\"]}\n    periodSeconds: 1\n")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id := runContainer(t, "--network", "none", "-v", dir+":/cfg:ro", testImage, "--config", "/cfg/c.yaml")
	if pid1 := docker(t, "exec", id, "cat", "/proc/1/comm"); pid1 != "healthbridge" {
		t.Fatalf("PID 1 is %q", pid1)
	}
	const runFor = 30 * time.Second
	time.Sleep(runFor)
	metrics := docker(t, "exec", id, "wget", "-qO-", "http://127.0.0.1:8080/metrics")
	count := func(check, result string) int {
		key := fmt.Sprintf(`healthbridge_check_probe_total{check=%q,kind="exec",result=%q} `, check, result)
		for _, l := range strings.Split(metrics, "\n") {
			if v, ok := strings.CutPrefix(l, key); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return int(n)
			}
		}
		t.Fatalf("no metric %s", key)
		return 0
	}
	total := 0
	for i := 0; i < workers; i++ {
		name := "orphans-" + strconv.Itoa(i)
		ok, failed, unknown := count(name, "success"), count(name, "failure"), count(name, "unknown")
		if failed != 0 || unknown != 0 {
			t.Fatalf("%s: %d successes, %d failures, %d unknown: an exit status was lost", name, ok, failed, unknown)
		}
		total += ok
	}
	if total < 200 {
		t.Fatalf("only %d runs", total)
	}
	if f, u := count("seven", "failure"), count("seven", "unknown"); u != 0 || f < 20 {
		t.Fatalf("seven: %d failures, %d unknown", f, u)
	}
	// seven is unhealthy, so /healthz/seven answers 503: read it raw.
	js := docker(t, "exec", id, "sh", "-c", `printf 'GET /healthz/seven?format=json HTTP/1.0\r\n\r\n' | nc 127.0.0.1 8080`)
	if strings.Count(js, `"exitCode": 7`) != 5 {
		t.Fatalf("the last 5 runs of seven must report exit code 7:\n%s", js)
	}
	// Let the last escaped orphans exit, then look for zombies.
	time.Sleep(time.Second)
	zombies := docker(t, "exec", id, "sh", "-c", `for s in /proc/[0-9]*/stat; do cat "$s" 2>/dev/null; echo; done | awk '$3=="Z"' | wc -l`)
	testutil.Report(t, "%d exec runs leaving orphans under PID 1 in %v: %d zombies, every exit status kept", total, runFor, atoi(t, zombies))
	if zombies != "0" {
		ps := docker(t, "top", id, "-o", "pid,ppid,stat,comm")
		t.Fatalf("%s zombies left:\n%s", zombies, ps)
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestDockerStop: docker stop returns within shutdownDelaySeconds + 2 s,
// exit code 0, and readiness failed first (exechealthz could not: it
// ignored SIGTERM).
func TestDockerStop(t *testing.T) {
	buildTestImage(t)
	const delay = 3 * time.Second
	dir := t.TempDir()
	cfg := fmt.Sprintf("listen: 127.0.0.1:8080\nshutdownDelaySeconds: %d\nchecks:\n  - name: self\n    tcpSocket: {port: 8080}\n    periodSeconds: 1\n", int(delay.Seconds()))
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	id := runContainer(t, "--network", "none", "-v", dir+":/cfg:ro", testImage, "--config", "/cfg/c.yaml")
	probeReady := func() (int, error) {
		_, err := dockerErr("exec", id, "/healthbridge", "probe", "http://127.0.0.1:8080/readyz")
		if err == nil {
			return 0, nil
		}
		if strings.Contains(err.Error(), "exit status 1") {
			return 1, nil
		}
		return -1, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := probeReady(); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopped := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		_, _ = dockerErr("stop", "-t", "30", id)
		stopped <- time.Since(start)
	}()
	// Readiness fails while the container is still running.
	sawNotReady := false
	for !sawNotReady && time.Since(start) < delay {
		if code, _ := probeReady(); code == 1 {
			sawNotReady = true
		}
	}
	took := <-stopped
	if !sawNotReady {
		t.Fatal("readiness never failed before the container stopped")
	}
	exit := docker(t, "inspect", "--format", "{{.State.ExitCode}}", id)
	testutil.Report(t, "docker stop returned after %v (bound: shutdownDelaySeconds %v + 2s), exit code %s, readiness failed first", took.Round(time.Millisecond), delay, exit)
	if exit != "0" {
		t.Fatalf("exit code %s", exit)
	}
	if took > delay+2*time.Second || took < delay-500*time.Millisecond {
		t.Fatalf("docker stop took %v, want about shutdownDelaySeconds (%v), at most +2s", took, delay)
	}
}

// TestDockerSidecarSharedNetwork: a service without health of its own and
// healthbridge in a second container sharing its network namespace
// (--network container:<name>); /readyz follows the service's life.
func TestDockerSidecarSharedNetwork(t *testing.T) {
	buildTestImage(t)
	// The service runs httpd while /tmp/run exists.
	svc := runContainer(t, "--network", "none", "--entrypoint", "/bin/sh", testImage, "-c",
		`mkdir -p /www /tmp; echo hi > /www/index.html; touch /tmp/run
while true; do if [ -e /tmp/run ]; then (exec httpd -f -p 127.0.0.1:8000 -h /www </dev/null) & echo $! > /tmp/pid; wait; fi; sleep 0.1; done`)
	dir := t.TempDir()
	cfg := "listen: 127.0.0.1:8080\nchecks:\n  - name: svc\n    roles: [readiness]\n    httpGet: {port: 8000, path: /index.html}\n    periodSeconds: 1\n    failureThreshold: 1\n"
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	hb := runContainer(t, "--network", "container:"+svc, "-v", dir+":/cfg:ro", testImage, "--config", "/cfg/c.yaml")
	ready := func() bool {
		_, err := dockerErr("exec", hb, "/healthbridge", "probe", "http://127.0.0.1:8080/readyz")
		return err == nil
	}
	wait := func(want bool, what string) time.Duration {
		start := time.Now()
		for ready() != want {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s: /readyz never became ready=%v", what, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(start)
	}
	wait(true, "service running")
	docker(t, "exec", svc, "sh", "-c", "rm /tmp/run; kill $(cat /tmp/pid)")
	d := wait(false, "service stopped")
	docker(t, "exec", svc, "touch", "/tmp/run")
	u := wait(true, "service restarted")
	testutil.Report(t, "sidecar over 127.0.0.1 of a shared netns: service stopped -> /readyz 503 after %v, restarted -> 200 after %v (period 1s)", d.Round(time.Millisecond), u.Round(time.Millisecond))
}

// TestDockerProductImage: the deploy/ image builds with its script, runs
// --help as a non-root user, and is a few MiB.
func TestDockerProductImage(t *testing.T) {
	out := buildDeployImage(t)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), deployImage+" ") {
			testutil.Report(t, "image %s", sc.Text())
		}
	}
	if user := docker(t, "image", "inspect", "--format", "{{.Config.User}}", deployImage); user != "65532:65532" {
		t.Fatalf("image user %q", user)
	}
	// Help that was asked for goes to stdout, with exit 0.
	if help := docker(t, "run", "--rm", deployImage, "--help"); !strings.Contains(help, "Usage:") {
		t.Fatalf("--help on stdout: %q", help)
	}
	// Its own HEALTHCHECK turns healthy.
	id := runContainer(t, "--network", "none", "--health-interval", "1s", deployImage)
	waitHealth(t, id, "healthy", 20*time.Second)

	// A config that moves listen to a non-default port, given through
	// HEALTHBRIDGE_CONFIG: the image's HEALTHCHECK follows it.
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755)
	cfg := "listen: \":9000\"\nchecks:\n  - {name: self, tcpSocket: {port: 9000}, periodSeconds: 1}\n"
	if err := os.WriteFile(filepath.Join(dir, "moved.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	moved := runContainer(t, "--network", "none", "--health-interval", "1s", "-v", dir+":/cfg:ro",
		"-e", "HEALTHBRIDGE_CONFIG=/cfg/moved.yaml", deployImage)
	waitHealth(t, moved, "healthy", 20*time.Second)
	if h := inspectHealth(t, moved); h.FailingStreak != 0 {
		t.Fatalf("moved listen: %+v", h)
	}
	if _, err := dockerErr("exec", moved, "/healthbridge", "probe", "tcp", "127.0.0.1:8642", "--timeout", "1s"); err == nil {
		t.Fatal("the moved server still listens on 8642")
	}
}

// TestDockerReadmeSidecarBesideApp: examples/sidecar.yaml (the README's
// sidecar quick start) in the product image, in the network namespace of
// an app that already holds 8080: healthbridge starts on its own default
// port, the image's HEALTHCHECK turns healthy, and readiness follows the
// app.
func TestDockerReadmeSidecarBesideApp(t *testing.T) {
	buildTestImage(t)
	buildDeployImage(t)
	app := runContainer(t, "--network", "none", "--entrypoint", "/bin/sh", testImage, "-c",
		`mkdir -p /www /tmp; echo hi > /www/index.html; httpd -f -p 8080 -h /www & echo $! > /tmp/pid; exec sleep 3600`)
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	hb := runContainer(t, "--network", "container:"+app, "--health-interval", "1s",
		"-v", filepath.Join(examples, "sidecar.yaml")+":/etc/healthbridge/healthbridge.yaml:ro", deployImage)
	waitHealth(t, hb, "healthy", 30*time.Second)
	ready := func() error {
		_, err := dockerErr("exec", hb, "/healthbridge", "healthcheck", "--endpoint", "readyz", "--timeout", "1s")
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never passed beside the app: %v", ready())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The app's HTTP server stops: readiness fails (app-http, threshold 2 at 5 s).
	docker(t, "exec", app, "sh", "-c", "kill $(cat /tmp/pid)")
	deadline = time.Now().Add(30 * time.Second)
	for ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still passes with the app gone")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDockerExechealthzImage: the exechealthz drop-in variant has a shell
// for -cmd, and follows exechealthz's own walkthrough in a container.
func TestDockerExechealthzImage(t *testing.T) {
	needDocker(t)
	bb, err := exec.LookPath("busybox")
	testutil.Need(t, err == nil && isStatic(bb), "no static busybox for the exechealthz image", "apt-get install busybox-static")
	tag := fmt.Sprintf("healthbridge:exechealthz-e2e-%d", os.Getpid())
	out, err := exec.Command("../deploy/build-image.sh", "--exechealthz", tag).CombinedOutput()
	if err != nil {
		t.Fatalf("build-image.sh --exechealthz: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = dockerErr("rmi", "--force", tag) })
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	testutil.Report(t, "exechealthz image %s", lines[len(lines)-1]) // the script's last line: tag and size
	id := runContainer(t, "--network", "none", tag, "-cmd", "ls /tmp/test", "-period", "500ms")
	get := func() (string, error) {
		return dockerErr("exec", id, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/healthz")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := get()
		if err != nil && strings.Contains(err.Error(), "503") {
			break // unhealthy: /tmp/test does not exist
		}
		if time.Now().After(deadline) {
			t.Fatalf("never 503 before the file exists: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	docker(t, "exec", id, "touch", "/tmp/test")
	for {
		body, err := get()
		if err == nil && body == "ok" {
			break
		}
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("never ok after touch: %q %v", body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDockerRunAsInit: healthbridge as the entrypoint, `run -- httpd`, no
// Docker socket. A hung app (SIGSTOP: it accepts connections and never
// answers) is restarted in place; `docker stop` gives it SIGTERM after the
// drain and the container's exit code is the app's; with
// onLivenessFailure: exit, Docker's --restart on-failure restarts the
// container.
func TestDockerRunAsInit(t *testing.T) {
	buildTestImage(t)
	const (
		period, threshold, timeout, drain, grace = 1, 2, 1, 1, 2
	)
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755)
	write := func(name, policy string) {
		cfg := fmt.Sprintf(`listen: 127.0.0.1:8080
shutdownDelaySeconds: %d
terminationGracePeriodSeconds: %d
onLivenessFailure: %s
checks:
  - name: web
    httpGet: {port: 8000, path: /}
    initialDelaySeconds: 1
    periodSeconds: %d
    timeoutSeconds: %d
    failureThreshold: %d
`, drain, grace, policy, period, timeout, threshold)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("restart.yaml", "restart")
	write("exit.yaml", "exit")
	app := []string{"--", "sh", "-c", "mkdir -p /www; echo hi > /www/index.html; exec httpd -f -p 127.0.0.1:8000 -h /www"}
	pidof := func(id string) string {
		out, _ := dockerErr("exec", id, "pidof", "httpd")
		return strings.TrimSpace(out)
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > limit {
				t.Fatalf("%s: not within %v", what, limit)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(start)
	}
	ready := func(id string) bool {
		_, err := dockerErr("exec", id, "/healthbridge", "probe", "http://127.0.0.1:8080/readyz")
		return err == nil
	}

	id := runContainer(t, append([]string{"--network", "none", "-v", dir + ":/cfg:ro", testImage, "run", "--config", "/cfg/restart.yaml", "--signal-group"}, app...)...)
	waitFor("ready", 30*time.Second, func() bool { return ready(id) })
	first := pidof(id)
	docker(t, "exec", id, "kill", "-STOP", first)
	bound := time.Duration(period*threshold+timeout+1+drain+grace)*time.Second + 4*time.Second
	took := waitFor("restarted in place", bound, func() bool { p := pidof(id); return p != "" && p != first })
	testutil.Report(t, "docker, healthbridge run: hung app (SIGSTOP) restarted in place after %v (bound %v: period %ds × failureThreshold %d + timeout %ds + 1s + drain %ds + grace %ds, since SIGTERM cannot end a stopped process, + 4s slack)",
		took.Round(time.Millisecond), bound, period, threshold, timeout, drain, grace)
	waitFor("ready again", 30*time.Second, func() bool { return ready(id) })
	if restarts := docker(t, "inspect", "--format", "{{.RestartCount}}", id); restarts != "0" {
		t.Fatalf("Docker restarted the container (%s): the restart was not in place", restarts)
	}
	// docker stop: the app's SIGTERM after the drain; its exit code (httpd
	// dies of SIGTERM: 143).
	if _, err := dockerErr("stop", "-t", "30", id); err != nil {
		t.Fatal(err)
	}
	if code := docker(t, "inspect", "--format", "{{.State.ExitCode}}", id); code != "143" {
		t.Fatalf("container exit code %s, want the app's 143", code)
	}

	// onLivenessFailure: exit, under Docker's own restart policy.
	id = runContainer(t, append([]string{"--network", "none", "--restart", "on-failure", "-v", dir + ":/cfg:ro", testImage, "run", "--config", "/cfg/exit.yaml", "--signal-group"}, app...)...)
	waitFor("ready", 30*time.Second, func() bool { return ready(id) })
	docker(t, "exec", id, "kill", "-STOP", pidof(id))
	took = waitFor("Docker restarted the container", bound+10*time.Second, func() bool {
		return docker(t, "inspect", "--format", "{{.RestartCount}}", id) != "0"
	})
	testutil.Report(t, "docker, onLivenessFailure: exit + --restart on-failure: container restarted by Docker %v after the app hung", took.Round(time.Millisecond))
}

// TestDockerExampleAppImage: the example application the Kubernetes
// manifests run (deploy/build-example-image.sh) builds FROM scratch, serves
// UDP echo, and its own readiness command passes; healthbridge's udp probe
// in its network namespace gets the echo.
func TestDockerExampleAppImage(t *testing.T) {
	buildTestImage(t)
	tag := fmt.Sprintf("healthbridge-example/udp-echo:e2e-%d", os.Getpid())
	out, err := exec.Command("../deploy/build-example-image.sh", tag).CombinedOutput()
	if err != nil {
		t.Fatalf("build-example-image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = dockerErr("rmi", "--force", tag) })
	app := runContainer(t, "--network", "none", tag)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := dockerErr("exec", app, "/udp-echo", "check")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("udp-echo check never passed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := dockerErr("run", "--rm", "--network", "container:"+app, testImage,
		"probe", "udp", "127.0.0.1:5353", "--send", "hello", "--expect", "^hello$", "-v"); err != nil {
		t.Fatalf("udp probe of the example app: %v %s", err, out)
	}
}

// TestDockerWaitAsEntrypoint: `healthbridge wait` as a scratch image's
// entrypoint holds the app back until its database's port opens in the
// shared network namespace, then becomes the app (PID 1, which gets
// docker stop's SIGTERM itself); a database that never comes is exit 124
// with the app never started.
func TestDockerWaitAsEntrypoint(t *testing.T) {
	buildTestImage(t)
	app := runContainer(t, "--network", "none", testImage, "wait", "--interval", "200ms", "--timeout", "0", "tcp://127.0.0.1:5432", "--",
		"/bin/sh", "-c", `trap 'echo app stopping; exit 0' TERM; echo "app started as pid $$"; while :; do sleep 0.1; done`)
	logsHave := func(s string) bool {
		out, _ := exec.Command("docker", "logs", app).CombinedOutput()
		return strings.Contains(string(out), s)
	}
	until := func(s string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !logsHave(s) {
			if time.Now().After(deadline) {
				out, _ := exec.Command("docker", "logs", app).CombinedOutput()
				t.Fatalf("no %q in the logs within a minute:\n%s", s, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	until("waiting for tcp://127.0.0.1:5432: ")
	if logsHave("app started") {
		t.Fatal("the app started before its database")
	}
	runContainer(t, "--network", "container:"+app, "--entrypoint", "/bin/httpd", testImage, "-f", "-p", "127.0.0.1:5432", "-h", "/")
	until("ready: tcp://127.0.0.1:5432")
	until("app started as pid 1")
	docker(t, "stop", "-t", "20", app)
	if !logsHave("app stopping") {
		t.Fatal("docker stop's SIGTERM did not reach the app")
	}
	if code := docker(t, "inspect", "--format", "{{.State.ExitCode}}", app); code != "0" {
		t.Fatalf("the app exited %s, want its own 0", code)
	}

	never := runContainer(t, "--network", "none", testImage, "wait", "--timeout", "1s", "127.0.0.1:5432", "--", "/bin/echo", "app started")
	if code := docker(t, "wait", never); code != "124" {
		t.Fatalf("a database that never comes: exit %s, want 124", code)
	}
	out, _ := exec.Command("docker", "logs", never).CombinedOutput()
	if strings.Contains(string(out), "app started") || !strings.Contains(string(out), "timed out after 1s; still waiting for: 127.0.0.1:5432") {
		t.Fatalf("logs: %s", out)
	}
}

// Package testutil runs the real healthbridge binary in tests: build it
// once, start it, wait until it serves, poll its endpoints. Only tests
// import it.
package testutil

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce  sync.Once
	buildBin   string
	buildErr   error
	staticOnce sync.Once
	staticBin  string
	staticErr  error
)

// Binary returns the path of healthbridge built from moduleRoot, building
// it on the first call in this test process. When the tests run with
// -race, so is the binary (it then needs cgo and is dynamically linked):
// a data race in the real process fails the test that started it. Call
// Cleanup from TestMain after m.Run.
func Binary(t *testing.T, moduleRoot string) string {
	t.Helper()
	statSources(moduleRoot)
	buildOnce.Do(func() { buildBin, buildErr = build(moduleRoot, raceEnabled) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// StaticBinary returns the path of a static healthbridge (CGO_ENABLED=0,
// no race detector) built from moduleRoot, for a FROM scratch image.
func StaticBinary(t *testing.T, moduleRoot string) string {
	t.Helper()
	statSources(moduleRoot)
	staticOnce.Do(func() { staticBin, staticErr = build(moduleRoot, false) })
	if staticErr != nil {
		t.Fatal(staticErr)
	}
	return staticBin
}

// statSources stats every source of the module. `go test` caches a
// package's result keyed on the files the test process opens or stats
// while tests run; the binary comes from a child `go build`, so stat its
// sources here, or an edit would be served a stale "ok" from the cache.
func statSources(moduleRoot string) {
	_ = filepath.WalkDir(moduleRoot, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "go.mod") || strings.HasSuffix(path, "go.sum")) {
			_, _ = os.Stat(path)
		}
		return nil
	})
}

// Cleanup removes the binaries Binary and StaticBinary built, if any.
func Cleanup() {
	for _, b := range []string{buildBin, staticBin} {
		if b != "" {
			os.RemoveAll(filepath.Dir(b))
		}
	}
}

// build compiles ./cmd/healthbridge of moduleRoot into a new temporary
// directory, with the race detector when race is set, and with -tags lean
// when the tests run with it. The full build's kubernetesPod kind runs
// healthbridge-kube, which is built next to it, where healthbridge looks
// first.
func build(moduleRoot string, race bool) (string, error) {
	dir, err := os.MkdirTemp("", "healthbridge-test")
	if err != nil {
		return "", err
	}
	// healthbridge-healthcheck hands what it cannot read to the
	// healthbridge next to it.
	pkgs := []string{"./cmd/healthbridge", "./cmd/healthbridge-healthcheck"}
	if !Lean {
		pkgs = append(pkgs, "./cmd/healthbridge-kube")
	}
	// With more than one package, -o names a directory.
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if Lean {
		args = append(args, "-tags", "lean")
	}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if race {
		args = append(args, "-race")
		env = append(os.Environ(), "CGO_ENABLED=1")
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = moduleRoot
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "healthbridge"), nil
}

// NeedFull skips a test that needs what the lean build leaves out (the
// grpc and kubernetesPod kinds, grpcListen, the status page) when the
// tests run with -tags lean; what tells the lean binary's refusal apart is tested on its own.
func NeedFull(t testing.TB, what string) {
	t.Helper()
	if Lean {
		t.Skipf("needs %s, which the lean build (-tags lean) leaves out", what)
	}
}

// Process is a running healthbridge.
type Process struct {
	Cmd *exec.Cmd
	// Addr is the base URL of the public server, http://host:port.
	Addr string
	// Done is closed when the process has exited.
	Done chan struct{}

	mu     sync.Mutex
	stderr strings.Builder
}

// raceWarning starts the race detector's report in a -race binary's stderr.
const raceWarning = "WARNING: DATA RACE"

var addrRE = regexp.MustCompile(`msg=serving addr=(\S+)`)

// Start runs bin with args and waits until it logs where it serves. The
// process is killed at the end of the test.
func Start(t *testing.T, bin string, args ...string) *Process {
	t.Helper()
	return StartOnPort(t, 0, bin, args...)
}

// StartEnv is Start with extra environment variables (KEY=VALUE).
func StartEnv(t *testing.T, bin string, env []string, args ...string) *Process {
	t.Helper()
	return start(t, 0, env, bin, args...)
}

// StartOnPort is Start for a process that may not log its address (-quiet):
// with port > 0 it waits until 127.0.0.1:port accepts instead.
func StartOnPort(t *testing.T, port int, bin string, args ...string) *Process {
	t.Helper()
	return start(t, port, nil, bin, args...)
}

func start(t *testing.T, port int, env []string, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(bin, args...), Done: make(chan struct{})}
	// Its own process group, killed whole at the end: a child it started
	// (healthbridge run) must not outlive the test holding its stderr.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if env != nil {
		p.Cmd.Env = append(os.Environ(), env...)
	}
	errPipe, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 2)
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_ = p.Cmd.Wait()
		close(p.Done)
	}()
	t.Cleanup(func() {
		KillTree(p.Cmd.Process.Pid)
		<-p.Done
		if strings.Contains(p.Logs(), raceWarning) {
			t.Errorf("the race detector found a data race in healthbridge")
		}
		if t.Failed() {
			t.Logf("healthbridge stderr:\n%s", p.Logs())
		}
	})
	if port > 0 {
		go func() {
			for {
				if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
					c.Close()
					addr <- "127.0.0.1:" + strconv.Itoa(port)
					return
				}
				select {
				case <-p.Done:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	select {
	case a := <-addr:
		p.Addr = "http://" + strings.Replace(a, "[::]", "127.0.0.1", 1)
	case <-p.Done:
		t.Fatalf("healthbridge exited: %s", p.Logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("healthbridge did not start: %s", p.Logs())
	}
	return p
}

// Logs returns what the process wrote to stderr so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// LoggedAddr waits for a log line with msg=<msg> and returns its addr.
func (p *Process) LoggedAddr(t *testing.T, msg string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(p.Logs(), "\n") {
			if strings.Contains(line, "msg=\""+msg+"\"") || strings.Contains(line, "msg="+msg+" ") {
				_, a, _ := strings.Cut(line, "addr=")
				return strings.Fields(a)[0]
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q line logged: %s", msg, p.Logs())
	return ""
}

// Get fetches path from the public server.
func (p *Process) Get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(p.Addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WaitFor polls path until cond holds, for at most 15 s. A real process
// runs real probes on real periods; this waits on them, bounded.
func (p *Process) WaitFor(t *testing.T, path string, cond func(code int, body string) bool) (int, string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := p.Get(t, path)
		if cond(code, body) {
			return code, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still %d %q", path, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Run runs bin with args to completion and returns its exit code, stdout
// and stderr.
func Run(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if strings.Contains(errb.String(), raceWarning) {
		t.Errorf("the race detector found a data race in healthbridge:\n%s", errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// WriteFile writes body to a new file in a test temporary directory and
// returns its path.
func WriteFile(t *testing.T, name, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// Listen serves a loopback TCP listener until the end of the test, calling
// handle in its own goroutine for each accepted connection, and returns its
// address.
func Listen(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, ln, handle)
	return ln.Addr().String()
}

// Serve accepts on ln (a listener of the test's own: at a given address,
// TLS, or one it closes itself) until it is closed or the test ends,
// calling handle in its own goroutine for each connection.
func Serve(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// EnvReport names a file that Report appends to; .ci/run sets it and prints
// the file, since `go test` hides the output of passing packages.
const EnvReport = "HEALTHBRIDGE_TEST_REPORT"

// Report logs a measured figure on the test and appends it as a line to
// $HEALTHBRIDGE_TEST_REPORT when set.
func Report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := t.Name() + ": " + fmt.Sprintf(format, args...)
	t.Log(line)
	if f := os.Getenv(EnvReport); f != "" {
		reportMu.Lock()
		defer reportMu.Unlock()
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Errorf("report: %v", err)
			return
		}
		defer fh.Close()
		fmt.Fprintln(fh, line)
	}
}

var reportMu sync.Mutex

// EnvArtifacts names a directory where tests save artifacts (a status page
// screenshot); .ci/run sets it. Unset: a directory under the system's
// temporary directory.
const EnvArtifacts = "HEALTHBRIDGE_TEST_ARTIFACTS"

// Artifact writes data as name in the artifacts directory and returns its
// path.
func Artifact(t *testing.T, name string, data []byte) string {
	t.Helper()
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "healthbridge-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("artifact: %s", p)
	return p
}

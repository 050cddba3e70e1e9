package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/health"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// writer is one client library driving a unit through its life.
type writer interface {
	load(t *testing.T)
	set(t *testing.T, code int)
	reset(t *testing.T)
}

type goWriter struct{ u *health.Unit }

func (g goWriter) load(t *testing.T) {
	if err := g.u.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
}
func (g goWriter) set(t *testing.T, code int) {
	if err := g.u.Set(code); err != nil {
		t.Fatal(err)
	}
}
func (g goWriter) reset(t *testing.T) {
	if err := g.u.Reset(); err != nil {
		t.Fatal(err)
	}
}

// pyWriter drives clients/python/liveness.py in a live python3 process, so
// the pid it writes is a running process.
type pyWriter struct {
	in  io.Writer
	out *bufio.Scanner
}

func newPyWriter(t *testing.T, rundir, unit string) *pyWriter {
	t.Helper()
	py, err := exec.LookPath("python3")
	testutil.Need(t, err == nil, "python3 is not installed", "apt-get install -y python3")
	clients, _ := filepath.Abs("../../clients/python")
	cmd := exec.Command(py, "testdata/liveness_driver.py", clients, rundir, unit)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	return &pyWriter{in: in, out: bufio.NewScanner(out)}
}

func (p *pyWriter) do(t *testing.T, line, want string) {
	t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
	if !p.out.Scan() {
		t.Fatalf("python driver died after %q", line)
	}
	if got := p.out.Text(); !strings.HasPrefix(got, want) {
		t.Fatalf("python %q: %q, want %q", line, got, want)
	}
}
func (p *pyWriter) load(t *testing.T)          { p.do(t, "load", "done") }
func (p *pyWriter) set(t *testing.T, code int) { p.do(t, "set "+strconv.Itoa(code), "done") }
func (p *pyWriter) reset(t *testing.T)         { p.do(t, "reset", "done") }

// TestRunDirClientsDriveSidecarAndShellChecker: the Go library and the
// Python module each take a unit through healthy -> unhealthy (set
// non-zero) -> reset -> healthy (load again), and the sidecar's rundir check
// and the POSIX shell checker follow.
func TestRunDirClientsDriveSidecarAndShellChecker(t *testing.T) {
	rundir := t.TempDir()
	cfg := writeConfig(t, `listen: 127.0.0.1:0
exposeOutput: true
checks:
  - name: go-app
    roles: [readiness]
    rundir: {path: `+rundir+`, unit: go-app}
    periodSeconds: 1
    failureThreshold: 1
  - name: py-app
    roles: [readiness]
    rundir: {path: `+rundir+`, unit: py-app}
    periodSeconds: 1
    failureThreshold: 1
`)
	p := start(t, "--config", cfg)
	gu, err := health.NewUnit(rundir, "go-app")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		unit string
		w    writer
	}{
		{"go-app", goWriter{gu}},
		{"py-app", newPyWriter(t, rundir, "py-app")},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			expect := func(step string, healthy bool, reason string) {
				t.Helper()
				want := 503
				if healthy {
					want = 200
				}
				p.WaitFor(t, "/readyz/"+tc.unit+"?format=json", func(code int, body string) bool {
					return code == want && strings.Contains(body, reason)
				})
				code, _, stderr := runShell(t, rundir, tc.unit)
				if (code == 0) != healthy || !strings.Contains(stderr, strings.TrimPrefix(reason, "unhealthy: ")) {
					t.Fatalf("%s: shell checker exit %d %q", step, code, stderr)
				}
				hcode, _, herr := runBinary(t, "probe", "rundir", rundir, "--unit", tc.unit)
				if (hcode == 0) != healthy {
					t.Fatalf("%s: healthbridge probe rundir exit %d %q", step, hcode, herr)
				}
			}
			expect("before load", false, "not started")
			tc.w.load(t)
			expect("loaded, no state", false, "no state set yet")
			tc.w.set(t, 0)
			expect("set 0", true, "")
			tc.w.set(t, 5)
			expect("set 5", false, "error code 5")
			tc.w.reset(t)
			expect("reset", false, "not started")
			tc.w.load(t)
			tc.w.set(t, 0)
			expect("load again, set 0", true, "")
		})
	}
	// A failing start-up check in Python raises RuntimeError and writes nothing.
	py := newPyWriter(t, rundir, "py-fail")
	py.do(t, "load-fail", "raised: health check failed: bad_mod")
	if _, err := os.Stat(filepath.Join(rundir, "py-fail", "pid")); !os.IsNotExist(err) {
		t.Fatalf("load that failed wrote a pid: %v", err)
	}
}

func runShell(t *testing.T, rundir, unit string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("sh", "../../clients/sh/rundir-check.sh", rundir, unit)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// TestTTLPushOnlyOnAdminListener: reports change a ttl check through the
// admin address only; the public listener refuses them; no report within
// the TTL fails with "TTL expired".
func TestTTLPushOnlyOnAdminListener(t *testing.T) {
	cfg := writeConfig(t, `listen: 127.0.0.1:0
adminListen: 127.0.0.1:0
exposeOutput: true
checks:
  - name: beat
    roles: [readiness]
    ttl: {seconds: 2}
`)
	p := start(t, "--config", cfg)
	admin := adminAddr(t, p)
	post := func(base, path, body string) int {
		resp, err := http.Post(base+path, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// "starting" (before the first run) is 503 too: wait for the verdict.
	if _, body := p.WaitFor(t, "/readyz?verbose", func(code int, body string) bool { return code == 503 && !strings.Contains(body, "no result yet") }); !strings.Contains(body, "TTL expired: no report yet") {
		t.Fatalf("before any report: %q", body)
	}
	// The public listener refuses writes, and nothing changes.
	for _, m := range []string{"POST", "PUT"} {
		req, _ := http.NewRequest(m, p.Addr+"/checks/beat/pass", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 {
			t.Fatalf("%s on the public listener: %d", m, resp.StatusCode)
		}
	}
	if code, _ := p.Get(t, "/readyz"); code != 503 {
		t.Fatalf("a public write changed health: %d", code)
	}
	if c := post(admin, "/checks/nope/pass", ""); c != 404 {
		t.Fatalf("unknown check: %d", c)
	}
	if c := post(admin, "/checks/beat/pass", "all good"); c != 200 {
		t.Fatalf("admin pass: %d", c)
	}
	// RunNow makes the report visible at once, well before the next period.
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	if c := post(admin, "/checks/beat/fail", "disk full"); c != 200 {
		t.Fatalf("admin fail: %d", c)
	}
	if _, body := p.WaitFor(t, "/readyz?verbose", func(code int, _ string) bool { return code == 503 }); !strings.Contains(body, "disk full") {
		t.Fatalf("after fail: %q", body)
	}
	post(admin, "/checks/beat/warn", "slow")
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	// No report for the 2 s TTL: expired.
	start := time.Now()
	_, body := p.WaitFor(t, "/readyz?verbose", func(code int, _ string) bool { return code == 503 })
	if !strings.Contains(body, "TTL expired (last output before timeout follows): slow") || time.Since(start) > 10*time.Second {
		t.Fatalf("expiry: %q after %v", body, time.Since(start))
	}
	// And it recovers with the next report.
	post(admin, "/checks/beat/pass", "")
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
}

func adminAddr(t *testing.T, p *child) string {
	t.Helper()
	return "http://" + p.LoggedAddr(t, "serving admin")
}

// rawRequest sends request (a whole HTTP/1.1 request, sent as is: no
// client cleans its path) to addr (http://host:port) and returns the
// response's status code and its Location header.
func rawRequest(t *testing.T, addr, request string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", request, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestAdminNeverRedirects: the push port answers a non-canonical path
// with a 4xx, never a redirect that a client would follow with its POST;
// a method the endpoint does not take is 405 with Allow.
func TestAdminNeverRedirects(t *testing.T) {
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\nchecks:\n  - {name: ex, roles: [readiness], ttl: {seconds: 60}}\n")
	p := start(t, "--config", cfg)
	admin := adminAddr(t, p)
	for _, target := range []string{"/checks", "/checks/", "/checks/batch/../ex/fail", "/checks/./ex/fail", "//checks/ex/fail",
		"/checks/ex/fail/", "/checks/ex//fail", "/checks/ex/fail/..", "*", "/checks/ex/nope", "/", "//"} {
		for _, method := range []string{"POST", "PUT", "GET", "OPTIONS"} {
			req := method + " " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
			code, loc := rawRequest(t, admin, req)
			if code < 400 || code > 499 || loc != "" {
				t.Errorf("%s %s: %d (Location %q), want a 4xx and no redirect", method, target, code, loc)
			}
		}
	}
	resp, err := http.Get(admin + "/checks/ex/pass")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allow := resp.Header.Get("Allow"); resp.StatusCode != 405 || !strings.Contains(allow, "POST") || !strings.Contains(allow, "PUT") {
		t.Fatalf("GET on a push endpoint: %d Allow %q", resp.StatusCode, allow)
	}
	// The canonical path still works, and the report counts.
	if code, _ := rawRequest(t, admin, "POST /checks/ex/pass HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); code != 200 {
		t.Fatalf("POST /checks/ex/pass: %d", code)
	}
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	// The public listener never redirects either.
	for _, target := range []string{"//readyz", "/readyz/", "/./readyz", "/x/../readyz", "*"} {
		for _, method := range []string{"GET", "POST", "OPTIONS"} {
			code, loc := rawRequest(t, p.Addr, method+" "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if (code >= 300 && code < 400) || loc != "" {
				t.Errorf("public %s %s: %d (Location %q)", method, target, code, loc)
			}
		}
	}
}

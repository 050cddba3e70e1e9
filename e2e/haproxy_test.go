// Package e2e tests healthbridge with real peers: a real HAProxy taking
// servers out of rotation and back because of what healthbridge says.
package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopKube()
	removeTestImages()
	testutil.Cleanup()
	os.Exit(code)
}

// bin returns the healthbridge binary under test, built once.
func bin(t *testing.T) string { t.Helper(); return testutil.Binary(t, "..") }

// echo is a TCP service without any health endpoint of its own: it answers
// each line with "<name>:<line>". It can be stopped and started again on the
// same port, and counts the client connections it served: those that sent
// at least one line (healthbridge's own tcpSocket probe connects and closes
// without a word, and is not client traffic).
type echo struct {
	name   string
	port   int
	served atomic.Int64
	mu     sync.Mutex
	ln     net.Listener
}

func newEcho(t *testing.T, name string) *echo {
	e := &echo{name: name}
	e.start(t)
	e.port = e.ln.Addr().(*net.TCPAddr).Port
	t.Cleanup(e.stop)
	return e
}

func (e *echo) start(t *testing.T) {
	t.Helper()
	addr := "127.0.0.1:0"
	if e.port != 0 {
		addr = "127.0.0.1:" + strconv.Itoa(e.port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.ln = ln
	e.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				sc := bufio.NewScanner(c)
				for first := true; sc.Scan(); first = false {
					if first {
						e.served.Add(1)
					}
					fmt.Fprintf(c, "%s:%s\n", e.name, sc.Text())
				}
			}()
		}
	}()
}

func (e *echo) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ln != nil {
		e.ln.Close()
		e.ln = nil
	}
}

// haproxy is a running HAProxy with an admin stats socket.
type haproxy struct {
	sock     string
	frontend int
	out      *strings.Builder
}

func startHAProxy(t *testing.T, backend string) *haproxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	testutil.Need(t, err == nil, "haproxy is not installed", "apt-get install -y haproxy")
	dir := t.TempDir()
	h := &haproxy{sock: filepath.Join(dir, "admin.sock"), frontend: testutil.FreePort(t), out: &strings.Builder{}}
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s
frontend fe
    bind 127.0.0.1:%d
    default_backend be
backend be
    balance roundrobin
%s
`, h.sock, h.frontend, backend)
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", cfgFile)
	cmd.Stdout, cmd.Stderr = h.out, h.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy config:\n%s\nhaproxy output:\n%s", cfg, h.out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.command("show info"); err == nil {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not start: %s", h.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *haproxy) command(cmd string) (string, error) {
	c, err := net.Dial("unix", h.sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// status is HAProxy's own view of a server: the "status" column of
// `show stat` (UP, DOWN, DRAIN, "UP 1/2", …).
func (h *haproxy) status(t *testing.T, server string) string {
	t.Helper()
	out, err := h.command("show stat")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	cols := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	idx := -1
	for i, c := range cols {
		if c == "status" {
			idx = i
		}
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) > idx && f[0] == "be" && f[1] == server {
			return f[idx]
		}
	}
	t.Fatalf("no server be/%s in show stat:\n%s", server, out)
	return ""
}

// waitStatus waits until server's status starts with want and returns how
// long that took; it fails the test after limit.
func (h *haproxy) waitStatus(t *testing.T, server, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		st := h.status(t, server)
		if strings.HasPrefix(st, want) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("be/%s: status %q after %v, want %q within %v", server, st, time.Since(start), want, limit)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Timing of every scenario, chosen small so the test is quick and bounded.
const (
	hbPeriod    = 1 * time.Second // healthbridge periodSeconds
	hbTimeout   = 1 * time.Second // healthbridge timeoutSeconds
	hbFailures  = 2               // healthbridge failureThreshold
	hbSuccesses = 1
	hpInter     = 500 * time.Millisecond // HAProxy inter and agent-inter
	hpFall      = 2
	hpRise      = 1
	// slack covers process scheduling and this test's 25 ms polling on a
	// loaded 2-core machine.
	slack = 1 * time.Second
)

// downBound is the longest a server may stay UP after its backend stops:
// healthbridge needs failureThreshold failing runs, one period apart, the
// first within one period (each run bounded by the timeout); HAProxy then
// needs fall failing checks, inter apart, the first within one inter.
func downBound() time.Duration {
	return time.Duration(hbFailures)*hbPeriod + hbTimeout + time.Duration(hpFall)*hpInter + slack
}

// upBound is the same for coming back: successThreshold runs, then rise
// checks.
func upBound() time.Duration {
	return time.Duration(hbSuccesses)*hbPeriod + hbTimeout + time.Duration(hpRise)*hpInter + slack
}

func hbConfig(t *testing.T, backendPort int, extra string) string {
	return testutil.WriteFile(t, "healthbridge.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
exposeOutput: true
%s
checks:
  - name: echo
    roles: [readiness, liveness]
    tcpSocket: {port: %d}
    periodSeconds: %d
    timeoutSeconds: %d
    failureThreshold: %d
    successThreshold: %d
`, extra, backendPort, int(hbPeriod.Seconds()), int(hbTimeout.Seconds()), hbFailures, hbSuccesses))
}

func hbPort(t *testing.T, p *testutil.Process) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(p.Addr, "http://"))
	n, _ := strconv.Atoi(port)
	return n
}

// cycle stops the backend, measures how long HAProxy takes to mark the
// server DOWN, starts it again and measures UP.
func cycle(t *testing.T, h *haproxy, backend *echo) {
	t.Helper()
	h.waitStatus(t, "s1", "UP", 15*time.Second)
	backend.stop()
	down := h.waitStatus(t, "s1", "DOWN", downBound())
	testutil.Report(t, "backend stopped -> HAProxy DOWN after %v (bound %v = failureThreshold %d × period %v + timeout %v + fall %d × inter %v + %v slack)",
		down.Round(time.Millisecond), downBound(), hbFailures, hbPeriod, hbTimeout, hpFall, hpInter, slack)
	backend.start(t)
	up := h.waitStatus(t, "s1", "UP", upBound())
	testutil.Report(t, "backend started -> HAProxy UP after %v (bound %v)", up.Round(time.Millisecond), upBound())
}

// TestHAProxyHTTPCheckReadyz: option httpchk GET /readyz against healthbridge.
// Also: a healthbridge killed outright fails HAProxy's check (fail-safe).
func TestHAProxyHTTPCheckReadyz(t *testing.T) {
	backend := newEcho(t, "s1")
	hb := testutil.Start(t, bin(t), "--config", hbConfig(t, backend.port, ""))
	h := startHAProxy(t, fmt.Sprintf(`    option httpchk GET /readyz
    default-server inter %dms fall %d rise %d
    server s1 127.0.0.1:%d check port %d`, hpInter.Milliseconds(), hpFall, hpRise, backend.port, hbPort(t, hb)))
	cycle(t, h, backend)

	if err := hb.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-hb.Done
	bound := time.Duration(hpFall)*hpInter + hpInter + slack
	d := h.waitStatus(t, "s1", "DOWN", bound)
	testutil.Report(t, "healthbridge killed -> HAProxy DOWN after %v (bound %v)", d.Round(time.Millisecond), bound)
}

// TestHAProxyDefaultHTTPCheck: HAProxy's bare `option httpchk`, which sends
// "OPTIONS / HTTP/1.0" without a Host header.
func TestHAProxyDefaultHTTPCheck(t *testing.T) {
	backend := newEcho(t, "s1")
	hb := testutil.Start(t, bin(t), "--config", hbConfig(t, backend.port, ""))
	h := startHAProxy(t, fmt.Sprintf(`    option httpchk
    default-server inter %dms fall %d rise %d
    server s1 127.0.0.1:%d check port %d`, hpInter.Milliseconds(), hpFall, hpRise, backend.port, hbPort(t, hb)))
	cycle(t, h, backend)
}

// TestHAProxyOptionsStarCheck: the classic check from HAProxy's own
// documentation, "option httpchk OPTIONS * HTTP/1.1\r\nHost:\ www".
// net/http answers OPTIONS * with 200 by itself; healthbridge must answer
// it with the verdict, so the server goes DOWN when its backend stops.
func TestHAProxyOptionsStarCheck(t *testing.T) {
	backend := newEcho(t, "s1")
	hb := testutil.Start(t, bin(t), "--config", hbConfig(t, backend.port, ""))
	h := startHAProxy(t, fmt.Sprintf(`    option httpchk OPTIONS * HTTP/1.1\r\nHost:\ www
    default-server inter %dms fall %d rise %d
    server s1 127.0.0.1:%d check port %d`, hpInter.Milliseconds(), hpFall, hpRise, backend.port, hbPort(t, hb)))
	cycle(t, h, backend)
}

// TestHAProxyAgentCheckAndDrain: agent-check beside a plain TCP check of
// healthbridge's port. On SIGTERM the agent says "drain": HAProxy shows
// DRAIN and no new connection reaches s1 while healthbridge is still
// serving its shutdown delay.
func TestHAProxyAgentCheckAndDrain(t *testing.T) {
	backend := newEcho(t, "s1")
	other := newEcho(t, "s2")
	agentPort := testutil.FreePort(t)
	hb := testutil.Start(t, bin(t), "--config", hbConfig(t, backend.port,
		fmt.Sprintf("shutdownDelaySeconds: 6\nagent: {listen: \"127.0.0.1:%d\", role: readiness}", agentPort)))
	h := startHAProxy(t, fmt.Sprintf(`    default-server inter %[1]dms fall %[2]d rise %[3]d
    server s1 127.0.0.1:%[4]d check port %[5]d agent-check agent-port %[6]d agent-inter %[1]dms
    server s2 127.0.0.1:%[7]d`, hpInter.Milliseconds(), hpFall, hpRise, backend.port, hbPort(t, hb), agentPort, other.port))
	// The agent marks DOWN on its first "down": no fall count applies.
	cycle(t, h, backend)

	// Both servers take traffic before the drain.
	for i := 0; i < 10; i++ {
		roundTrip(t, h.frontend)
	}
	if backend.served.Load() == 0 {
		t.Fatal("s1 took no connections before the drain")
	}

	sent := time.Now()
	if err := hb.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d := h.waitStatus(t, "s1", "DRAIN", hpInter+slack)
	testutil.Report(t, "SIGTERM -> HAProxy DRAIN after %v (bound %v)", d.Round(time.Millisecond), hpInter+slack)
	before := backend.served.Load()
	for i := 0; i < 20; i++ {
		if got := roundTrip(t, h.frontend); !strings.HasPrefix(got, "s2:") {
			t.Fatalf("a new connection reached the draining server: %q", got)
		}
	}
	if n := backend.served.Load() - before; n != 0 {
		t.Fatalf("s1 served %d new connections while draining", n)
	}
	if time.Since(sent) > 6*time.Second {
		t.Fatal("the drain checks outlasted the shutdown delay; the test proves nothing")
	}
	select {
	case <-hb.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("healthbridge did not exit after its shutdown delay")
	}
	if ec := hb.Cmd.ProcessState.ExitCode(); ec != 0 {
		t.Fatalf("healthbridge exit code %d", ec)
	}
}

// roundTrip opens a new connection through HAProxy, sends a line and
// returns the reply, which names the server that answered.
func roundTrip(t *testing.T, port int) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintln(c, "ping")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("through haproxy: %v", err)
	}
	return strings.TrimSpace(line)
}

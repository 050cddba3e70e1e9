package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/healthbridge/healthbridge/health"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// TestProbeExitCodes: every kind of `healthbridge probe`, success and
// failure, against real loopback targets: exit 0 healthy, 1 unhealthy, quiet
// on success, one line on stderr on failure.
func TestProbeExitCodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Token") != "s3cret" {
				w.WriteHeader(401)
			}
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(srv.Close)
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(tls.Close)
	tcpAddr := testutil.Listen(t, func(c net.Conn) { c.Close() })
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	grpcAddr, hs := testutil.GRPCServer(t, true)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)

	rundir := t.TempDir()
	u, _ := health.NewUnit(rundir, "app")
	_ = u.Load(t.Context())
	_ = u.Set(0)
	bad, _ := health.NewUnit(rundir, "bad")
	_ = bad.Load(t.Context())
	_ = bad.Set(4)

	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"probe", srv.URL + "/ok", "--header", "X-Token: s3cret"}, 0, ""},
		{[]string{"probe", srv.URL + "/ok"}, 1, "HTTP probe failed with statuscode: 401"},
		{[]string{"probe", srv.URL + "/redirect", "--header", "X-Token:s3cret"}, 0, ""},
		{[]string{"probe", srv.URL + "/loop"}, 1, "stopped after 10 redirects"},
		{[]string{"probe", srv.URL + "/fail"}, 1, "statuscode: 500"},
		{[]string{"probe", tls.URL + "/", "--insecure"}, 0, ""},
		{[]string{"probe", tls.URL + "/"}, 1, "certificate"},
		{[]string{"probe", "tcp", tcpAddr}, 0, ""},
		{[]string{"probe", "tcp", closedAddr}, 1, "connection refused"},
		{[]string{"probe", "rundir", rundir, "--unit", "app"}, 0, ""},
		{[]string{"probe", "rundir", rundir, "--unit", "bad"}, 1, "error code 4"},
		{[]string{"probe", "rundir", rundir, "--unit", "none"}, 1, "not started"},
		{[]string{"probe", "grpc", grpcAddr}, 0, ""},
		{[]string{"probe", "grpc", grpcAddr, "--service", "db"}, 1, "NOT_SERVING"},
		{[]string{"probe", "grpc", closedAddr}, 1, "connection refused"},
		{[]string{"probe", "exec", "--", "sh", "-c", "exit 0"}, 0, ""},
		{[]string{"probe", "exec", "--", "sh", "-c", "echo nope; exit 3"}, 1, "nope"},
		{[]string{"probe", "exec", "--", "no-such-binary-hb"}, 2, "not found"},
		{[]string{"probe", "tcp"}, 2, "want exactly one HOST:PORT"},
		{[]string{"probe", "ftp://x"}, 2, `unknown probe "ftp://x"`},
		{[]string{"probe", "tcp", "x:1", "--timeout", "-1s"}, 2, "--timeout: must be > 0"},
	}
	for _, tt := range tests {
		if testutil.Lean && tt.args[1] == "grpc" {
			// The lean build says which build has the kind.
			tt.code, tt.stderr = 2, "the grpc kind is not in this binary (built with -tags lean)"
		}
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			code, stdout, stderr := runBinary(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d stderr %q; want %d containing %q", code, stderr, tt.code, tt.stderr)
			}
			if code == 0 && (stdout != "" || stderr != "") {
				t.Fatalf("not quiet on success: %q %q", stdout, stderr)
			}
			if code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Fatalf("more than one line on failure: %q", stderr)
			}
		})
	}
	// -v gives detail on success.
	if code, out, _ := runBinary(t, "probe", "-v", "tcp", tcpAddr); code != 0 || !strings.HasPrefix(out, "healthy: ") {
		t.Fatalf("-v: %d %q", code, out)
	}
}

// TestProbeTimeoutBoundsHangingTargets: a target that never answers is a
// failure after --timeout, not a hang.
func TestProbeTimeoutBoundsHangingTargets(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); srv.Close() })
	for _, args := range [][]string{
		{"probe", srv.URL, "--timeout", "500ms"},
		{"probe", "--timeout", "500ms", "exec", "--", "sleep", "60"},
	} {
		start := time.Now()
		code, _, stderr := runBinary(t, args...)
		took := time.Since(start)
		if code != 1 || took > 3*time.Second || !(strings.Contains(stderr, "timeout") || strings.Contains(stderr, "exceeded")) {
			t.Fatalf("%v: exit %d after %v: %q", args, code, took, stderr)
		}
	}
}

func TestCheckConfigOnce(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ok.Close)
	port := ok.Listener.Addr().(*net.TCPAddr).Port
	cfg := writeConfig(t, fmt.Sprintf(`checks:
  - name: web
    roles: [readiness]
    httpGet: {port: %d, path: /}
  - name: broken
    roles: [liveness]
    exec: {command: [sh, -c, "echo down; exit 1"]}
  - name: beat
    ttl: {seconds: 5}
`, port))
	if code, _, stderr := runBinary(t, "check", "--config", cfg, "--role", "readiness"); code != 0 {
		t.Fatalf("readiness only: %d %q", code, stderr)
	}
	code, _, stderr := runBinary(t, "check", "--config", cfg)
	if code != 1 || stderr != "unhealthy: broken: down\n" {
		t.Fatalf("all: %d %q", code, stderr)
	}
	if code, _, _ := runBinary(t, "check", "--config", cfg, "--role", "bogus"); code != 2 {
		t.Fatalf("bad role: %d", code)
	}
	bad := writeConfig(t, "checks: [{name: a}]\n")
	if code, _, stderr := runBinary(t, "check", "--config", bad); code != 2 || !strings.Contains(stderr, "no probe") {
		t.Fatalf("bad config: %d %q", code, stderr)
	}
	_ = os.Remove(bad)
}

// TestProbeHTTPSFlags: the one-shot client verifies certificates as curl
// does; --ca trusts a private CA, --insecure skips verification, and
// --cert/--key present a client certificate.
func TestProbeHTTPSFlags(t *testing.T) {
	dir := t.TempDir()
	cert, key := testutil.SelfSigned(t, dir, "server.test")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pem)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"--cert", cert, "--key", key}, 1}, // unknown authority
		{[]string{"--ca", cert}, 1},                 // no client certificate
		{[]string{"--ca", cert, "--cert", cert, "--key", key}, 0},
		{[]string{"--insecure", "--cert", cert, "--key", key}, 0},
		{[]string{"--ca", filepath.Join(dir, "missing.pem")}, 2},
	} {
		code, _, stderr := runBinary(t, append([]string{"probe", srv.URL + "/"}, tt.args...)...)
		if code != tt.code {
			t.Errorf("%q: exit %d, want %d (%s)", tt.args, code, tt.code, stderr)
		}
	}
}

// TestProbeUserAgent: HTTP probes, one-shot and scheduled, say
// "User-Agent: healthbridge/<version>", as documented, with the version
// `healthbridge version` prints.
func TestProbeUserAgent(t *testing.T) {
	uas := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case uas <- r.Header.Get("User-Agent"):
		default:
		}
	}))
	t.Cleanup(srv.Close)
	_, version, _ := runBinary(t, "version")
	want := "healthbridge/" + strings.Fields(version)[1] // "healthbridge 0.1.0 (go1.26.8)"
	if code, _, stderr := runBinary(t, "probe", srv.URL+"/"); code != 0 {
		t.Fatalf("probe: exit %d %s", code, stderr)
	}
	if ua := <-uas; ua != want {
		t.Fatalf("one-shot User-Agent %q, want %q", ua, want)
	}
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks: [{name: web, httpGet: {host: 127.0.0.1, port: "+srv.URL[strings.LastIndex(srv.URL, ":")+1:]+", path: /}, periodSeconds: 1}]\n")
	start(t, "--config", cfg)
	select {
	case ua := <-uas:
		if ua != want {
			t.Fatalf("sidecar User-Agent %q, want %q", ua, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the sidecar never probed")
	}
}

// TestHealthcheckFollowsListen: `healthbridge healthcheck` (the image's
// HEALTHCHECK) asks the server at the config's own listen address, here
// not the default, over loopback when it listens on every address, with
// the file from --config or $HEALTHBRIDGE_CONFIG; each endpoint answers
// its own verdict, and a server that is not there is unhealthy.
func TestHealthcheckFollowsListen(t *testing.T) {
	port := testutil.FreePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`listen: ":%d"
checks:
  - {name: up, roles: [liveness], exec: {command: ["true"]}, periodSeconds: 1}
  - {name: down, roles: [readiness], exec: {command: ["false"]}, periodSeconds: 1, failureThreshold: 1}
`, port))
	// The same listen in JSON: healthbridge-healthcheck hands it to the
	// full program next to it.
	jsonCfg := testutil.WriteFile(t, "config.json", fmt.Sprintf(`{"listen": ":%d", "checks": []}`, port))
	p := startQuiet(t, port, "--config", cfg)
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 503 })
	p.WaitFor(t, "/livez", func(code int, _ string) bool { return code == 200 })
	small := filepath.Join(filepath.Dir(bin(t)), "healthbridge-healthcheck")
	for _, tc := range []struct {
		args []string
		env  string
		code int
	}{
		{[]string{"--config", cfg}, "", 0},
		{[]string{}, cfg, 0},
		{[]string{"--endpoint", "readyz"}, cfg, 1},
		{[]string{"--endpoint", "/healthz", "--config", cfg}, "", 1},
		{[]string{"--config=" + cfg, "--timeout=1s", "-v"}, "", 0},
		{[]string{"--config", jsonCfg}, "", 0},
		{[]string{"--endpoint", "readyz"}, jsonCfg, 1},
		{[]string{}, "", 2},
		{[]string{"--endpoint", "metrics", "--config", cfg}, "", 2},
		{[]string{"--config", cfg, "--timeout", "0s"}, "", 2},
		{[]string{"--config", cfg + ".missing"}, "", 2},
	} {
		// The full program's healthcheck and the images' small one agree.
		for _, argv := range [][]string{append([]string{bin(t), "healthcheck"}, tc.args...), append([]string{small}, tc.args...)} {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), "HEALTHBRIDGE_CONFIG="+tc.env)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("%q (HEALTHBRIDGE_CONFIG=%q): exit %d, want %d: %s", argv, tc.env, code, tc.code, out)
			}
		}
	}
	// The server gone, the same command is a failure, not a usage error.
	testutil.KillTree(p.Cmd.Process.Pid)
	<-p.Done
	if code, _, stderr := runBinary(t, "healthcheck", "--config", cfg); code != 1 || !strings.Contains(stderr, "connection refused") {
		t.Errorf("server gone: exit %d, %q", code, stderr)
	}
	if code, _, stderr := testutil.Run(t, small, "--config", cfg); code != 1 || !strings.Contains(stderr, "connection refused") {
		t.Errorf("server gone: healthbridge-healthcheck exit %d, %q", code, stderr)
	}
}

// TestProbeHTTPExpectFlags: the one-shot form of httpGet's expectations
// and request method and body, against a real server.
func TestProbeHTTPExpectFlags(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, `{"echo":%q}`, b)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"DOWN","replicas":3,"ready":false}`)
	}))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{srv.URL}, 0, ""},
		{[]string{srv.URL, "--expect-json", "status=UP"}, 1, `json status is "DOWN", want "UP"`},
		{[]string{srv.URL, "--expect-json", "status=DOWN", "--expect-json", "replicas=3", "--expect-json", "ready=false"}, 0, ""},
		{[]string{srv.URL, "--expect-body", `"status":"UP"`}, 1, "body does not match bodyRegex"},
		{[]string{srv.URL, "--expect-status", "204"}, 1, "statuscode: 200 (expect.status: 204)"},
		{[]string{srv.URL, "--expect-status", "200-299"}, 0, ""},
		{[]string{srv.URL, "--method", "POST", "--data", "ping", "--expect-json", "echo=ping"}, 0, ""},
		{[]string{srv.URL, "--expect-status", "2xx"}, 2, `--expect-status: want a code (200) or a range ("200-299"), got "2xx"`},
		{[]string{srv.URL, "--expect-json", "status"}, 2, "--expect-json: want PATH=VALUE"},
		{[]string{srv.URL, "--expect-body", "("}, 2, "--expect.bodyRegex: error parsing regexp"},
		{[]string{srv.URL, "--method", "get me"}, 2, "--method: want an HTTP method"},
	} {
		t.Run(strings.Join(c.args[1:], " "), func(t *testing.T) {
			code, _, stderr := runBinary(t, append([]string{"probe"}, c.args...)...)
			if code != c.code || !strings.Contains(stderr, c.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d with %q", code, stderr, c.code, c.stderr)
			}
		})
	}
}

// TestProbeTCPConversationFlags: `probe tcp --send --expect` and the same
// as a wait target's query, against a real server that answers PING.
func TestProbeTCPConversationFlags(t *testing.T) {
	addr := testutil.Listen(t, func(c net.Conn) {
		defer c.Close()
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && line == "PING\r\n" {
			fmt.Fprint(c, "+PONG\r\n")
		}
	})
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"probe", "tcp", addr, "--send", `PING\r\n`, "--expect", `^\+PONG`}, 0, ""},
		{[]string{"probe", "tcp", addr, "--send", `PONG\r\n`, "--expect", `^\+PONG`, "--timeout", "1s"}, 1, "the server closed the connection; got nothing"},
		{[]string{"probe", "tcp", addr, "--expect", "("}, 2, "--expect: not a regular expression"},
		{[]string{"wait", "-q", "tcp://" + addr + "?send=PING%0D%0A&expect=%5E%5C%2BPONG"}, 0, ""},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, _, stderr := runBinary(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d with %q", code, stderr, c.code, c.stderr)
			}
		})
	}
}

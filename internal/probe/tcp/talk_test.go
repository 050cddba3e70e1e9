package tcp_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// startDaemon runs a real server from the host (Debian's redis-server,
// memcached) on a free loopback port, and returns the port once it
// accepts connections; the server is killed at the test's end.
func startDaemon(t *testing.T, name string, args func(port int) []string) int {
	t.Helper()
	path, err := exec.LookPath(name)
	testutil.Need(t, err == nil, "no "+name, "apt-get install the package of "+name)
	port := testutil.FreePort(t)
	cmd := exec.Command(path, args(port)...)
	cmd.Dir = t.TempDir()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened on %d: %v\n%s", name, port, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probeTCP builds the tcpSocket check whose body (the lines under
// "tcpSocket:") is given, as healthbridge loads a config, and probes once
// with a timeout of 2 s.
func probeTCP(t *testing.T, port int, body string) probe.Result {
	t.Helper()
	cfg := fmt.Sprintf("checks:\n  - name: c\n    tcpSocket:\n      port: %d\n", port)
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		cfg += "      " + l + "\n"
	}
	c, err := kinds.Parse([]byte(cfg))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", cfg, err)
	}
	p, err := kinds.Of(&c.Checks[0]).New(&c.Checks[0], probe.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	return p.Probe(ctx)
}

// TestTCPConversationsWithRealServers: HAProxy's widely copied Redis check
// (PING → +PONG; with a password, AUTH first; INFO replication →
// role:master), memcached's version, an SMTP banner and EHLO, and NATS'
// PING/PONG, against the real servers.
func TestTCPConversationsWithRealServers(t *testing.T) {
	redis := startDaemon(t, "redis-server", func(port int) []string {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", "s3cret"}
	})
	memcached := startDaemon(t, "memcached", func(port int) []string {
		return []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-u", "root", "-m", "8"}
	})
	// A local SMTP sink (Python's smtpd, in Debian's python3 3.11) and
	// Debian's nats-server.
	smtp := startDaemon(t, "python3", func(port int) []string {
		return []string{"-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", "127.0.0.1:" + strconv.Itoa(port)}
	})
	nats := startDaemon(t, "nats-server", func(port int) []string {
		return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
	})
	for _, c := range []struct {
		name   string
		port   int
		body   string
		pass   bool
		output string
	}{
		{"redis without the password", redis, `send: "PING\r\n"` + "\n" + `expect: '^\+PONG'`, false,
			`step 2 (expect "^\\+PONG"): no match within the timeout; got "-NOAUTH Authentication required.\r\n"`},
		{"redis with AUTH, PING and role:master", redis, `steps:
  - send: "AUTH s3cret\r\n"
  - expect: '^\+OK\r\n'
  - send: "PING\r\n"
  - expect: '^\+PONG\r\n'
  - send: "INFO replication\r\n"
  - expect: 'role:master'`, true, "role:master"},
		{"redis: role:slave is not this one", redis, `steps:
  - send: "AUTH s3cret\r\n"
  - expect: '^\+OK'
  - send: "INFO replication\r\n"
  - expect: 'role:slave'`, false, `step 4 (expect "role:slave"): no match within the timeout; got "\r\n$`},
		{"memcached version", memcached, `send: "version\r\n"` + "\n" + `expect: '^VERSION \d+\.\d+'`, true, "VERSION 1."},
		{"memcached: a command it does not know", memcached, `send: "nope\r\n"` + "\n" + `expect: '^VERSION'`, false, `got "ERROR\r\n"`},
		{"connect only, as the kubelet", memcached, "", true, ""},
		{"SMTP: the banner, then EHLO", smtp, `steps:
  - expect: '^220 '
  - send: "EHLO healthbridge\r\n"
  - expect: '(?m)^250 '`, true, "250 "},
		{"SMTP: a reply it does not give", smtp, `expect: '^421 '`, false, `step 1 (expect "^421 "): no match within the timeout; got "220 `},
		{"NATS: INFO, then PING and PONG", nats, `steps:
  - expect: '^INFO \{'
  - send: "CONNECT {\"verbose\":false}\r\nPING\r\n"
  - expect: 'PONG\r\n'`, true, "PONG"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := probeTCP(t, c.port, c.body)
			if r.Outcome.Passing() != c.pass || !strings.Contains(r.Output, c.output) {
				t.Fatalf("%v %q; want passing %v with %q", r.Outcome, r.Output, c.pass, c.output)
			}
		})
	}
}

// hostile serves each connection with serve on a loopback listener.
func hostile(t *testing.T, serve func(net.Conn)) int {
	t.Helper()
	addr := testutil.Listen(t, serve)
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return n
}

// TestTCPConversationWithHostileServers: a server that closes at once,
// answers garbage, never answers or floods is a failure that says so,
// within the timeout and with bounded memory, never a hang.
func TestTCPConversationWithHostileServers(t *testing.T) {
	expect := `send: "PING\r\n"` + "\n" + `expect: '^\+PONG'`
	for _, c := range []struct {
		name   string
		serve  func(net.Conn)
		output string
	}{
		{"closes at once", func(c net.Conn) { c.Close() }, "the server closed the connection; got nothing"},
		{"answers garbage and closes", func(c net.Conn) {
			fmt.Fprint(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
			c.Close()
		}, `the server closed the connection; got "HTTP/1.1 400 Bad Request\r\n\r\n"`},
		{"never answers", func(c net.Conn) {
			_, _ = bufio.NewReader(c).ReadString(0) // until the prober resets
			c.Close()
		}, "no match within the timeout; got nothing"},
		{"floods", func(c net.Conn) {
			junk := []byte(strings.Repeat("x", 4096))
			for {
				if _, err := c.Write(junk); err != nil {
					c.Close()
					return
				}
			}
		}, "no match in the first 64 KiB; got \"xxxx"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := probeTCP(t, hostile(t, c.serve), expect)
			if r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, c.output) {
				t.Fatalf("%v %q; want a failure with %q", r.Outcome, r.Output, c.output)
			}
			if r.Duration() > 10*time.Second {
				t.Fatalf("took %v", r.Duration())
			}
		})
	}
}

// TestTCPWithTLS: implicit TLS, the conversation inside it, and the
// server's certificate expiry (in an hour: minValidity 2h warns).
func TestTCPWithTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testutil.SelfSigned(t, dir, "localhost")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && line == "PING\r\n" {
			fmt.Fprint(c, "+PONG\r\n")
		}
	})
	port := ln.Addr().(*net.TCPAddr).Port
	ca := filepath.ToSlash(certFile)
	r := probeTCP(t, port, fmt.Sprintf(`send: "PING\r\n"
expect: '^\+PONG'
tls: {caFile: %s, serverName: localhost}`, ca))
	if r.Outcome != probe.OutcomeSuccess || r.Output != "+PONG" || time.Until(r.CertExpiry) > time.Hour || time.Until(r.CertExpiry) < 50*time.Minute {
		t.Fatalf("%v %q, certificate expiry %v", r.Outcome, r.Output, r.CertExpiry)
	}
	r = probeTCP(t, port, fmt.Sprintf(`send: "PING\r\n"
expect: '^\+PONG'
tls: {caFile: %s, serverName: localhost, minValidity: 2h}`, ca))
	if r.Outcome != probe.OutcomeWarning || !strings.Contains(r.Output, "within tls.minValidity 2h0m0s") {
		t.Fatalf("minValidity 2h: %v %q", r.Outcome, r.Output)
	}
	// Plaintext to a TLS server: the handshake never happens, the reply
	// is not a PONG.
	if r := probeTCP(t, port, `send: "PING\r\n"`+"\n"+`expect: '^\+PONG'`); r.Outcome != probe.OutcomeFailure {
		t.Fatalf("plaintext to TLS: %v %q", r.Outcome, r.Output)
	}
	// A name the certificate does not carry: the handshake fails.
	if r := probeTCP(t, port, fmt.Sprintf("tls: {caFile: %s, serverName: other}", ca)); r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "tls handshake") {
		t.Fatalf("wrong name: %v %q", r.Outcome, r.Output)
	}
}

// TestTCPConversationValidated: a bad conversation is a config error
// naming its field.
func TestTCPConversationValidated(t *testing.T) {
	for body, want := range map[string]string{
		"{port: 1, send: a, sendHex: '00'}":        "checks[0].tcpSocket.sendHex: give send or sendHex, not both",
		"{port: 1, sendHex: 'zz'}":                 "checks[0].tcpSocket.sendHex: not hexadecimal bytes",
		"{port: 1, expect: '('}":                   "checks[0].tcpSocket.expect: not a regular expression",
		"{port: 1, send: a, steps: [{send: b}]}":   "checks[0].tcpSocket.steps: give steps, or send and expect, not both",
		"{port: 1, steps: [{send: a, expect: b}]}": "checks[0].tcpSocket.steps[0]: want exactly one of send, sendHex and expect, got 2",
		"{port: 1, steps: [{}]}":                   "checks[0].tcpSocket.steps[0]: want exactly one of send, sendHex and expect, got 0",
		"{port: 1, steps: [{expect: '['}]}":        "checks[0].tcpSocket.steps[0].expect: not a regular expression",
		"{port: 1, tls: {certFile: a}}":            "checks[0].tcpSocket.tls: certFile and keyFile go together",
		"{port: 1, tls: {minValidity: 2 days}}":    `checks[0].tcpSocket.tls.minValidity: want a duration such as "168h"`,
	} {
		_, err := kinds.Parse([]byte("checks:\n  - name: c\n    tcpSocket: " + body + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tcpSocket %s: %v, want an error with %q", body, err, want)
		}
	}
}

package grpc

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

func serve(t *testing.T, withHealth bool, opts ...grpc.ServerOption) (string, *health.Server) {
	t.Helper()
	return testutil.GRPCServer(t, withHealth, opts...)
}

func check(t *testing.T, addr, service string, tlsCfg *config.TLS, timeout time.Duration) probe.Result {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	n, _ := net.LookupPort("tcp", port)
	c := &config.Check{Name: "g", GRPC: &config.GRPCAction{Host: host, Port: int32(n), Service: &service, TLS: tlsCfg}}
	p, err := New(c, probe.Deps{UserAgent: "healthbridge/test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	return p.Probe(ctx)
}

func TestGRPCHealth(t *testing.T) {
	addr, hs := serve(t, true)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus("cache", healthpb.HealthCheckResponse_SERVING)
	noHealth, _ := serve(t, false)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name, addr, service string
		want                probe.Outcome
		output              string
	}{
		{"overall serving", addr, "", probe.OutcomeSuccess, "service healthy"},
		{"named service serving", addr, "cache", probe.OutcomeSuccess, "service healthy"},
		{"not serving", addr, "db", probe.OutcomeFailure, `service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", addr, "nope", probe.OutcomeFailure, "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"},
		{"no health service", noHealth, "", probe.OutcomeFailure, "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health"},
		{"connection refused", closedAddr, "", probe.OutcomeFailure, "error: failed to connect service at \"" + closedAddr + "\": connection error: desc = \"transport: Error while dialing: dial tcp " + closedAddr + ": connect: connection refused\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := check(t, tt.addr, tt.service, nil, 2*time.Second)
			if r.Outcome != tt.want || !strings.Contains(r.Output, tt.output) {
				t.Fatalf("%v %q, want %v containing %q", r.Outcome, r.Output, tt.want, tt.output)
			}
		})
	}

	// Serving status changes are seen on the next probe.
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if r := check(t, addr, "", nil, 2*time.Second); r.Outcome != probe.OutcomeFailure {
		t.Fatalf("after NOT_SERVING: %v", r.Outcome)
	}
}

// TestGRPCTimeoutBoundsDialAndCall: a listener that accepts and never
// speaks HTTP/2 is a failure after the timeout, not a hang.
func TestGRPCTimeoutBoundsDialAndCall(t *testing.T) {
	// Holds each connection open, silent, until the client gives up.
	addr := testutil.Listen(t, func(c net.Conn) { defer c.Close(); _, _ = io.Copy(io.Discard, c) })
	start := time.Now()
	r := checkAddr(t, addr, 300*time.Millisecond)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v", took)
	}
	// The kubelet's words for a connection that never became ready.
	if want := `timeout: failed to connect service "` + addr + `" within 300ms: context deadline exceeded`; r.Outcome != probe.OutcomeFailure || r.Output != want {
		t.Fatalf("%v %q, want %q", r.Outcome, r.Output, want)
	}

	// Connected, but the call does not complete: the kubelet's words too.
	hung := hungHealth(t)
	if r := checkAddr(t, hung, 300*time.Millisecond); r.Outcome != probe.OutcomeFailure || r.Output != "timeout: health rpc did not complete within 300ms" {
		t.Fatalf("%v %q", r.Outcome, r.Output)
	}
}

// checkAddr probes addr's overall health with a timeout of d.
func checkAddr(t *testing.T, addr string, d time.Duration) probe.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	return NewAddr(addr, "", nil, "", d).Probe(ctx)
}

// hang is a health service whose Check never answers.
type hang struct {
	healthpb.UnimplementedHealthServer
}

func (hang) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// hungHealth serves hang on loopback.
func hungHealth(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, hang{})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// TestGRPCLeavesNoTimeWait: the probe's connections close with SO_LINGER
// 0, as tcpSocket's and httpGet's: after 20 probes no socket to or from
// the server's port is in TIME_WAIT (without it, 20 are).
func TestGRPCLeavesNoTimeWait(t *testing.T) {
	addr, _ := serve(t, true)
	_, port, _ := net.SplitHostPort(addr)
	for range 20 {
		if r := checkAddr(t, addr, 5*time.Second); r.Outcome != probe.OutcomeSuccess {
			t.Fatalf("%v %q", r.Outcome, r.Output)
		}
	}
	if n := timeWait(t, port); n != 0 {
		t.Fatalf("%d sockets in TIME_WAIT on port %s after 20 probes", n, port)
	}
}

// timeWait counts the IPv4 TCP sockets in TIME_WAIT whose local or remote
// port is port (decimal), from /proc/net/tcp.
func timeWait(t *testing.T, port string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	p, _ := strconv.Atoi(port)
	hexPort := fmt.Sprintf(":%04X", p)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st ...; st 06 is TIME_WAIT.
		if len(f) > 3 && f[3] == "06" && (strings.HasSuffix(f[1], hexPort) || strings.HasSuffix(f[2], hexPort)) {
			n++
		}
	}
	return n
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testutil.SelfSigned(t, dir, "healthbridge.test")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, true, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	tests := []struct {
		name string
		tls  *config.TLS
		want probe.Outcome
	}{
		{"plaintext to a TLS server", nil, probe.OutcomeFailure},
		{"unverified", &config.TLS{InsecureSkipVerify: true}, probe.OutcomeSuccess},
		{"verified with caFile", &config.TLS{CAFile: certFile, ServerName: "healthbridge.test"}, probe.OutcomeSuccess},
		{"unknown authority", &config.TLS{ServerName: "healthbridge.test"}, probe.OutcomeFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := check(t, addr, "", tt.tls, 2*time.Second); r.Outcome != tt.want {
				t.Fatalf("%v %q, want %v", r.Outcome, r.Output, tt.want)
			}
		})
	}
	c := &config.Check{GRPC: &config.GRPCAction{Port: 1, TLS: &config.TLS{CAFile: filepath.Join(dir, "missing.pem")}}}
	if _, err := New(c, probe.Deps{}); err == nil || !strings.HasPrefix(err.Error(), "grpc.tls.caFile: ") {
		t.Fatalf("missing caFile: %v", err)
	}
}

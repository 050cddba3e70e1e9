package grpc

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
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
	p, err := New(c, probe.Deps{UserAgent: "github.com/healthbridge/healthbridge/test"})
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
		{"unknown service", addr, "nope", probe.OutcomeFailure, `service unknown: "nope"`},
		{"no health service", noHealth, "", probe.OutcomeFailure, "does not implement the grpc health protocol"},
		{"connection refused", closedAddr, "", probe.OutcomeFailure, "connection refused"},
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
	r := check(t, addr, "", nil, 300*time.Millisecond)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v", took)
	}
	if r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "timeout") {
		t.Fatalf("%v %q", r.Outcome, r.Output)
	}
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

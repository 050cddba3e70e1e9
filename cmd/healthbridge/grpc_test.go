package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // the client side of healthCheckConfig
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

// grpcSidecar starts a healthbridge serving gRPC health, with a check "db"
// that passes while the returned file exists and a check "web" that always
// passes; it returns the process and the gRPC address.
func grpcSidecar(t *testing.T, extra string) (*child, string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "db-up")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := writeConfig(t, fmt.Sprintf(`listen: 127.0.0.1:0
grpcListen: %q
grpcServices: {"my.pkg.Service": readiness}
%s
checks:
  - name: web
    exec: {command: ["true"]}
    periodSeconds: 1
  - name: db
    roles: [readiness]
    exec: {command: [test, -e, %q]}
    periodSeconds: 1
    failureThreshold: 1
`, addr, extra, file))
	p := start(t, "--config", cfg)
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	return p, addr, file
}

func healthClient(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// TestGRPCHealthServiceNames: every service name, with a real grpc-go
// client and with healthbridge's own one-shot grpc probe.
func TestGRPCHealthServiceNames(t *testing.T) {
	testutil.NeedFull(t, "grpcListen")
	_, addr, file := grpcSidecar(t, "")
	c := healthClient(t, addr)
	check := func(service string) (healthpb.HealthCheckResponse_ServingStatus, codes.Code) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		return r.GetStatus(), status.Code(err)
	}
	want := map[string]healthpb.HealthCheckResponse_ServingStatus{
		"": healthpb.HealthCheckResponse_SERVING, "liveness": healthpb.HealthCheckResponse_SERVING,
		"readiness": healthpb.HealthCheckResponse_SERVING, "startup": healthpb.HealthCheckResponse_SERVING,
		"web": healthpb.HealthCheckResponse_SERVING, "db": healthpb.HealthCheckResponse_SERVING,
		"my.pkg.Service": healthpb.HealthCheckResponse_SERVING,
	}
	for svc, st := range want {
		if got, code := check(svc); got != st || code != codes.OK {
			t.Errorf("Check(%q): %v %v, want %v", svc, got, code, st)
		}
	}
	if _, code := check("nope"); code != codes.NotFound {
		t.Errorf("Check(unknown): %v, want NotFound", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := c.List(ctx, &healthpb.HealthListRequest{})
	if err != nil || len(list.GetStatuses()) != len(want) {
		t.Fatalf("List: %v %v", list, err)
	}
	// The one-shot client against it: exit 0, 1 for the unknown service.
	for svc, code := range map[string]int{"": 0, "readiness": 0, "db": 0, "my.pkg.Service": 0, "nope": 1} {
		if got, _, stderr := runBinary(t, "probe", "grpc", addr, "--service", svc); got != code {
			t.Errorf("probe grpc --service %q: exit %d, want %d (%s)", svc, got, code, stderr)
		}
	}
	// The check fails: readiness, the overall verdict, db and the alias
	// follow; liveness and web do not.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st, _ := check("readiness"); st == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readiness never NOT_SERVING")
		}
	}
	for svc, st := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		"": healthpb.HealthCheckResponse_NOT_SERVING, "db": healthpb.HealthCheckResponse_NOT_SERVING,
		"my.pkg.Service": healthpb.HealthCheckResponse_NOT_SERVING, "liveness": healthpb.HealthCheckResponse_SERVING,
		"web": healthpb.HealthCheckResponse_SERVING,
	} {
		if got, _ := check(svc); got != st {
			t.Errorf("after db failed, Check(%q): %v, want %v", svc, got, st)
		}
	}
	if got, _, _ := runBinary(t, "probe", "grpc", addr, "--service", "readiness"); got != 1 {
		t.Errorf("probe grpc readiness after the failure: exit %d", got)
	}
}

// TestKubeletGRPCProbeAgainstHealthbridge: a pod spec's grpc probe body,
// pasted into a second healthbridge's check, follows the first's verdict.
func TestKubeletGRPCProbeAgainstHealthbridge(t *testing.T) {
	testutil.NeedFull(t, "grpcListen")
	_, addr, file := grpcSidecar(t, "")
	port := addr[strings.LastIndex(addr, ":")+1:]
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nchecks:\n  - name: upstream\n    grpc: {port: "+port+", service: readiness}\n    periodSeconds: 1\n    failureThreshold: 1\n")
	p := start(t, "--config", cfg)
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 503 })
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
}

// TestGRPCWatch: the current value first, each change pushed, a watcher
// that never reads holds up nothing, and SIGTERM turns readiness and the
// overall verdict NOT_SERVING at once on open streams while liveness stays
// SERVING.
func TestGRPCWatch(t *testing.T) {
	testutil.NeedFull(t, "grpcListen")
	p, addr, file := grpcSidecar(t, "shutdownDelaySeconds: 4")
	c := healthClient(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := func(service string) <-chan healthpb.HealthCheckResponse_ServingStatus {
		s, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan healthpb.HealthCheckResponse_ServingStatus, 16)
		go func() {
			defer close(ch)
			for {
				r, err := s.Recv()
				if err != nil {
					return
				}
				ch <- r.GetStatus()
			}
		}()
		return ch
	}
	next := func(ch <-chan healthpb.HealthCheckResponse_ServingStatus, what string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		select {
		case st := <-ch:
			return st
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: nothing pushed", what)
			return 0
		}
	}
	// A watcher that never reads: its stream is never drained.
	if _, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: "db"}); err != nil {
		t.Fatal(err)
	}
	ready, live, all, unknown := watch("readiness"), watch("liveness"), watch(""), watch("nope")
	for name, ch := range map[string]<-chan healthpb.HealthCheckResponse_ServingStatus{"readiness": ready, "liveness": live, "": all} {
		if st := next(ch, name); st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%q first: %v", name, st)
		}
	}
	if st := next(unknown, "unknown"); st != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("unknown service: %v", st)
	}
	for range 3 { // flip db a few times: every change reaches the reader
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		if st := next(ready, "readiness"); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("readiness after db failed: %v", st)
		}
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if st := next(ready, "readiness"); st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("readiness after db recovered: %v", st)
		}
	}
	// The six transitions above came from probes that kept running beside
	// the stalled watcher of db; HTTP agrees with the last one.
	if code, body := p.Get(t, "/readyz/db"); code != 200 {
		t.Fatalf("db: %d %s", code, body)
	}
	sent := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := next(ready, "readiness on SIGTERM"); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("readiness on SIGTERM: %v", st)
	}
	if st := next(all, "overall on SIGTERM"); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("overall on SIGTERM: %v", st)
	}
	testutil.Report(t, "SIGTERM -> gRPC Watch(readiness) NOT_SERVING after %v", time.Since(sent).Round(time.Microsecond))
	select {
	case st, ok := <-live:
		if ok {
			t.Fatalf("liveness changed on SIGTERM: %v", st)
		}
	case <-time.After(time.Second):
	}
	select {
	case <-p.Done:
	case <-time.After(20 * time.Second):
		t.Fatal("healthbridge did not exit: an open Watch held the gRPC server")
	}
	if ec := p.Cmd.ProcessState.ExitCode(); ec != 0 {
		t.Fatalf("exit code %d", ec)
	}
}

// TestGRPCHealthOverMTLS: grpcTLS with a client CA: only a client with a
// certificate from it is answered.
func TestGRPCHealthOverMTLS(t *testing.T) {
	testutil.NeedFull(t, "grpcListen")
	dir := t.TempDir()
	cert, key := testutil.SelfSigned(t, dir, "server.test")
	cliCert, cliKey := testutil.SelfSigned(t, dir, "client.test")
	_, addr, _ := grpcSidecar(t, fmt.Sprintf("grpcTLS: {certFile: %q, keyFile: %q, clientCAFile: %q}", cert, key, cliCert))
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"--ca", cert, "--cert", cliCert, "--key", cliKey}, 0},
		{[]string{"--ca", cert}, 1}, // no client certificate
		{nil, 1},                    // plaintext to a TLS server
	} {
		if got, _, stderr := runBinary(t, append([]string{"probe", "grpc", addr, "--service", "readiness"}, tt.args...)...); got != tt.code {
			t.Errorf("%q: exit %d, want %d (%s)", tt.args, got, tt.code, stderr)
		}
	}
}

// TestGRPCClientSideHealthChecking: a grpc-go client with the service
// config's healthCheckConfig and round_robin over two backends, each a
// healthbridge with grpcListen, stops sending RPCs to the backend whose
// readiness fails (pushed by the Watch stream it keeps open) and sends
// them there again once it passes. The RPC the client sends is Health/Check
// itself, so that the backends are healthbridge alone; grpc.Peer says
// which backend answered.
func TestGRPCClientSideHealthChecking(t *testing.T) {
	testutil.NeedFull(t, "grpcListen")
	_, addrA, fileA := grpcSidecar(t, "")
	_, addrB, _ := grpcSidecar(t, "")
	r := manual.NewBuilderWithScheme("hb")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: addrA}, {Addr: addrB}}})
	conn, err := grpc.NewClient("hb:///backends", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": "readiness"}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	// served sends n RPCs and counts the answers per backend address.
	served := func(n int) map[string]int {
		t.Helper()
		out := map[string]int{}
		for range n {
			var p peer.Peer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "liveness"}, grpc.Peer(&p))
			cancel()
			if err != nil {
				t.Fatalf("RPC: %v", err)
			}
			out[p.Addr.String()]++
		}
		return out
	}
	// until sends batches of 20 RPCs until want holds (bounded).
	until := func(what string, want func(map[string]int) bool) {
		t.Helper()
		var got map[string]int
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got = served(20); want(got) {
				return
			}
		}
		t.Fatalf("%s: last 20 RPCs went %v", what, got)
	}
	until("both backends serving", func(m map[string]int) bool { return m[addrA] > 0 && m[addrB] > 0 })
	if err := os.Remove(fileA); err != nil {
		t.Fatal(err)
	}
	until("A's readiness failing", func(m map[string]int) bool { return m[addrA] == 0 && m[addrB] == 20 })
	// And it stays so: the client is not polling, it was told.
	if m := served(40); m[addrA] != 0 {
		t.Fatalf("RPCs reached the backend whose readiness fails: %v", m)
	}
	if err := os.WriteFile(fileA, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	until("A ready again", func(m map[string]int) bool { return m[addrA] > 0 && m[addrB] > 0 })
}

//go:build !lean && !nogrpc

package server

import (
	"context"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/state"
)

// GRPCHealth serves the verdicts as grpc.health.v1.Health (Check, Watch and
// List; List came with grpc-go 1.73's generated code), from the store's
// snapshots, like the HTTP endpoints. Service names:
//
//	""                       every check, as /healthz; NOT_SERVING once shutting down
//	liveness, readiness, startup
//	                         the role verdicts, as /livez /readyz /startupz (readiness
//	                         is NOT_SERVING once shutting down, liveness is not)
//	<check>                  that check alone: SERVING when it is healthy
//	aliases (grpcServices)   whatever service they name
//
// An unknown name is NOT_FOUND on Check and SERVICE_UNKNOWN on Watch, as
// the protocol says; the Watch stream stays open. Watch sends the current
// value first, then every change, woken by each snapshot publication (no
// polling). A watcher that does not read only holds up its own stream
// (gRPC's flow control): the store's writer never waits on it, and once
// the watcher reads again it gets the latest value (intermediate ones may
// be skipped, the latest never).
type GRPCHealth struct {
	healthpb.UnimplementedHealthServer
	store   *state.Store
	aliases map[string]string
	stop    chan struct{} // closed by Stop: ends every Watch
}

// NewGRPCHealth returns the service for store; aliases maps further names
// to the service they answer as (config grpcServices).
func NewGRPCHealth(store *state.Store, aliases map[string]string) *GRPCHealth {
	return &GRPCHealth{store: store, aliases: aliases, stop: make(chan struct{})}
}

// Register registers the service on s.
func (g *GRPCHealth) Register(s *grpc.Server) { healthpb.RegisterHealthServer(s, g) }

// Stop ends every open Watch, so that a graceful stop of the gRPC server
// does not wait for streams that never end by themselves. Call it once.
func (g *GRPCHealth) Stop() { close(g.stop) }

// status returns the serving status of service in snap, and false for an
// unknown name.
func (g *GRPCHealth) status(snap *state.Snapshot, service string) (healthpb.HealthCheckResponse_ServingStatus, bool) {
	if target, ok := g.aliases[service]; ok {
		service = target
	}
	ok := false
	switch service {
	case "":
		ok = snap.Plain(state.ScopeAll) && !snap.ShuttingDown
	case config.GRPCRoleServices[0]:
		ok = snap.Plain(state.ScopeLiveness)
	case config.GRPCRoleServices[1]:
		ok = snap.Plain(state.ScopeReadiness)
	case config.GRPCRoleServices[2]:
		ok = snap.Plain(state.ScopeStartup)
	default:
		c, found := snap.Get(service)
		if !found {
			return healthpb.HealthCheckResponse_SERVICE_UNKNOWN, false
		}
		ok = c.State.Status == state.StatusHealthy
	}
	if ok {
		return healthpb.HealthCheckResponse_SERVING, true
	}
	return healthpb.HealthCheckResponse_NOT_SERVING, true
}

// Check implements grpc.health.v1.Health/Check.
func (g *GRPCHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st, ok := g.status(g.store.Snapshot(), req.GetService())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// List implements grpc.health.v1.Health/List: every name Check answers.
func (g *GRPCHealth) List(context.Context, *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	snap := g.store.Snapshot()
	names := append([]string{""}, config.GRPCRoleServices...)
	for c := range snap.Checks() {
		names = append(names, c.Name)
	}
	for a := range g.aliases {
		names = append(names, a)
	}
	sort.Strings(names)
	out := &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{}}
	for _, n := range names {
		if st, ok := g.status(snap, n); ok {
			out.Statuses[n] = &healthpb.HealthCheckResponse{Status: st}
		}
	}
	return out, nil
}

// Watch implements grpc.health.v1.Health/Watch.
func (g *GRPCHealth) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ctx := stream.Context()
	sent := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		changed := g.store.Changed() // before the snapshot: no change falls between
		st, _ := g.status(g.store.Snapshot(), req.GetService())
		if st != sent {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			sent = st
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-g.stop:
			return status.Error(codes.Unavailable, "healthbridge is stopping")
		}
	}
}

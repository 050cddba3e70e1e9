//go:build !lean && !nogrpc

package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/server"
	"github.com/healthbridge/healthbridge/internal/state"
)

// grpcHealthServer is grpcListen's server: grpc.health.v1.Health on a
// grpc-go server.
type grpcHealthServer struct {
	srv  *grpc.Server
	hlth *server.GRPCHealth
}

// newGRPC builds the grpcListen server, with TLS from grpcTLS.
func newGRPC(cfg *config.Config, store *state.Store) (grpcServing, error) {
	var opts []grpc.ServerOption
	if t := cfg.GRPCTLS; t != nil {
		tc, err := serverTLS(t)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	g := &grpcHealthServer{srv: grpc.NewServer(opts...), hlth: server.NewGRPCHealth(store, cfg.GRPCServices)}
	g.hlth.Register(g.srv)
	return g, nil
}

func (g *grpcHealthServer) Serve(ln net.Listener) error { return g.srv.Serve(ln) }

// Stop ends the Watch streams (which never end by themselves), then stops
// gracefully, or at once when ctx ends first.
func (g *grpcHealthServer) Stop(ctx context.Context) {
	g.hlth.Stop()
	stopped := make(chan struct{})
	go func() { g.srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		g.srv.Stop()
	}
}

// serverTLS is the gRPC server's TLS config: its certificate, and with a
// client CA, mTLS (client certificates required and verified).
func serverTLS(t *config.ServerTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, config.Errorf("grpcTLS.certFile", "%v", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, config.Errorf("grpcTLS.clientCAFile", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, config.Errorf("grpcTLS.clientCAFile", "%s: no PEM certificates", t.ClientCAFile)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

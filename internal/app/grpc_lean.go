//go:build lean || nogrpc

package app

import (
	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// newGRPC refuses grpcListen: the lean build has no gRPC.
func newGRPC(*config.Config, *state.Store) (grpcServing, error) {
	return nil, config.Errorf("grpcListen", "not in this binary (built with -tags %s); the full build (image healthbridge) serves grpc.health.v1", probe.LeanTag)
}

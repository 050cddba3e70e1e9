//go:build !lean && !nogrpc

package kinds

import "github.com/healthbridge/healthbridge/internal/probe/grpc"

// grpcKind is the grpc kind, which links grpc-go and protobuf; -tags lean
// (or nogrpc) leaves it out (grpc_absent.go).
var grpcKind = &grpc.Kind

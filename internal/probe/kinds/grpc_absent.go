//go:build lean || nogrpc

package kinds

import (
	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// grpcKind is left out of this build: a config or a command line that uses
// it is told which build has it.
var grpcKind = probe.Absent("grpc", probe.LeanTag, func(c *config.Check) bool { return c.GRPC != nil }, "grpc")

func init() { Lean = true }

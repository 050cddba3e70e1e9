// Package kinds is the one registry of probe kinds: a map from each config
// kind to its constructor. Adding a kind means a package under
// internal/probe/<kind>, a config field, and one line here; a test checks
// that every kind the config knows has a constructor.
package kinds

import (
	"fmt"

	"healthbridge/internal/config"
	"healthbridge/internal/probe"
	"healthbridge/internal/probe/exec"
	"healthbridge/internal/probe/grpc"
	"healthbridge/internal/probe/http"
	"healthbridge/internal/probe/kube"
	"healthbridge/internal/probe/rundir"
	"healthbridge/internal/probe/tcp"
	"healthbridge/internal/probe/ttl"
)

// Constructor builds a Prober for one check. Errors name the offending field
// relative to the check ("exec.command[0]: ...").
type Constructor func(c *config.Check, d probe.Deps) (probe.Prober, error)

// Registry maps each probe kind to its constructor.
var Registry = map[config.Kind]Constructor{
	config.KindExec:      exec.New,
	config.KindHTTPGet:   http.New,
	config.KindTCPSocket: tcp.New,
	config.KindGRPC:      grpc.New,
	config.KindKubePod:   kube.New,
	config.KindRundir:    rundir.New,
	config.KindTTL:       ttl.New,
}

// New builds the Prober for a validated check. The error is prefixed with
// the check's kind when the config holds a kind without a constructor.
func New(c *config.Check, d probe.Deps) (probe.Prober, error) {
	k := c.Kind()
	ctor, ok := Registry[k]
	if !ok {
		return nil, fmt.Errorf("no prober for kind %q", k)
	}
	return ctor(c, d)
}

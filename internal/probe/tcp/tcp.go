// Package tcp is the tcpSocket probe: success when a TCP connection opens
// within the timeout, as the kubelet's pkg/probe/tcp. Nothing is sent; the
// connection is closed at once.
package tcp

import (
	"context"
	"errors"
	"net"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// Kind is the tcpSocket kind: `tcpSocket: {port, host}`, as the kubelet's.
var Kind = probe.Kind{
	Name: "tcpSocket",
	Has:  func(c *config.Check) bool { return c.TCPSocket != nil },
	Validate: func(c *config.Check, path string) []error {
		return config.ValidPort(path+".tcpSocket.port", c.TCPSocket.Port)
	},
	New: New,
	OneShot: &probe.OneShot{
		Words:   []string{"tcp"},
		Schemes: []string{"tcp"},
		Target:  probe.HostTarget("tcp"),
		Usage:   "tcp HOST:PORT [--timeout 5s] [-v]",
		Flags: func(*pflag.FlagSet) func(probe.Args) (probe.Prober, string, error) {
			return func(a probe.Args) (probe.Prober, string, error) {
				if len(a.Pos) != 2 {
					return nil, "", errors.New("tcp: want exactly one HOST:PORT")
				}
				return NewAddr(a.Pos[1]), a.Pos[1], nil
			}
		},
	},
}

// Prober dials one address per Probe call.
type Prober struct {
	addr string
}

// New builds a TCP prober from c.TCPSocket; host defaults to 127.0.0.1.
func New(c *config.Check, _ probe.Deps) (probe.Prober, error) {
	if c.TCPSocket == nil {
		return nil, config.Errorf("tcpSocket", "required")
	}
	return NewAddr(config.HostPort(c.TCPSocket.Host, config.PortNumber(c.TCPSocket.Port))), nil
}

// NewAddr builds a prober for a host:port address.
func NewAddr(addr string) *Prober { return &Prober{addr: addr} }

// Probe dials the address and closes the connection at once, with a
// reset (probe.Dialer: no TIME_WAIT left behind). A refused connection or
// a timeout (ctx) is a failure whose output is the dial error.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	conn, err := probe.Dialer().DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return probe.Failure("dial tcp %s: %v", p.addr, cause(err))
	}
	_ = conn.Close()
	return probe.Success("")
}

// cause strips net.OpError's repetition of the address.
func cause(err error) error {
	if oe, ok := err.(*net.OpError); ok && oe.Err != nil {
		return oe.Err
	}
	return err
}

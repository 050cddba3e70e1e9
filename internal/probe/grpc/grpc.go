// Package grpc is the grpc probe, with the kubelet's semantics
// (pkg/probe/grpc): call grpc.health.v1.Health/Check; only SERVING is
// success; NOT_SERVING, an unknown service, a server without the health
// service, a refused connection and a timeout are failures with an output
// that says which. One timeout (the context's) bounds dial and call. Beyond
// the kubelet: a host, and optional TLS.
package grpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/tlsclient"
)

// Kind is the grpc kind: the kubelet's grpc probe (port, service) plus
// host and tls.
var Kind = probe.Kind{
	Name: "grpc",
	Has:  func(c *config.Check) bool { return c.GRPC != nil },
	Validate: func(c *config.Check, path string) []error {
		var errs []error
		if g := c.GRPC; g.Port < 1 || g.Port > 65535 {
			errs = append(errs, config.Errorf(path+".grpc.port", "must be 1-65535, got %d", g.Port))
		}
		return append(errs, config.ValidTLS(path+".grpc.tls", c.GRPC.TLS)...)
	},
	New: New,
	OneShot: &probe.OneShot{
		Words:   []string{"grpc"},
		Schemes: []string{"grpc"},
		// grpc://HOST:PORT[/SERVICE]: the path is the service name.
		Target: func(u *url.URL) ([]string, error) {
			if u.Port() == "" || u.Hostname() == "" {
				return nil, errors.New("want grpc://HOST:PORT[/SERVICE]")
			}
			args := []string{"grpc", u.Host}
			if svc := strings.TrimPrefix(u.Path, "/"); svc != "" {
				args = append(args, "--service", svc)
			}
			return args, nil
		},
		Usage: "grpc HOST:PORT [--service NAME] [--tls] [--insecure] [--ca FILE] [--server-name N] [--cert FILE --key FILE] [-v]",
		Flags: func(fs *pflag.FlagSet) func(probe.Args) (probe.Prober, string, error) {
			service := fs.String("service", "", "the service name sent in HealthCheckRequest")
			useTLS := fs.Bool("tls", false, "dial with TLS (implied by --insecure, --ca and --cert)")
			tlsFlags := tlsclient.Flags(fs)
			return func(a probe.Args) (probe.Prober, string, error) {
				if len(a.Pos) != 2 {
					return nil, "", errors.New("grpc: want exactly one HOST:PORT")
				}
				tc, given, err := tlsFlags()
				if err != nil {
					return nil, "", err
				}
				if !given && !*useTLS {
					tc = nil // plaintext, as the kubelet
				}
				return NewAddr(a.Pos[1], *service, tc, a.Deps.UserAgent, a.Timeout), a.Pos[1], nil
			}
		},
	},
}

// Prober calls Health/Check on a new connection per Probe call, as the
// kubelet does, so a probe never reuses a connection that hides a restart.
type Prober struct {
	addr    string
	service string
	creds   credentials.TransportCredentials
	ua      string
	timeout time.Duration // for messages
	// minValidity: a passing run warns while the server's certificate
	// expires sooner than this; 0: never.
	minValidity time.Duration
}

// New builds a grpc prober from c.GRPC. TLS files are read now, so a
// missing or bad file is a start-up error.
func New(c *config.Check, d probe.Deps) (probe.Prober, error) {
	g := c.GRPC
	if g == nil {
		return nil, config.Errorf("grpc", "required")
	}
	svc := ""
	if g.Service != nil {
		svc = *g.Service
	}
	creds := insecure.NewCredentials()
	if g.TLS != nil {
		tc, err := tlsclient.Config(g.TLS, "grpc.tls")
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tc)
	}
	p := &Prober{addr: config.HostPort(g.Host, int(g.Port)), service: svc, creds: creds, ua: d.UserAgent, timeout: c.Timeout()}
	if g.TLS != nil {
		p.minValidity = g.TLS.MinValidity.Duration
	}
	return p, nil
}

// NewAddr builds a prober for addr (host:port) and service, plaintext when
// tc is nil. timeout is only for the timeout messages; the context
// carries the deadline.
func NewAddr(addr, service string, tc *tls.Config, userAgent string, timeout time.Duration) *Prober {
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	return &Prober{addr: addr, service: service, creds: creds, ua: userAgent, timeout: timeout}
}

// Probe dials, calls Check and judges the answer.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	// The probe dialer (SO_LINGER 0, as tcpSocket and httpGet): closing
	// the connection leaves no socket in TIME_WAIT.
	dialer := probe.Dialer()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(p.creds),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		})}
	if p.ua != "" {
		opts = append(opts, grpc.WithUserAgent(p.ua))
	}
	conn, err := grpc.NewClient("passthrough:///"+p.addr, opts...)
	if err != nil {
		return probe.Unknown(fmt.Errorf("grpc: %w", err))
	}
	defer conn.Close()
	// Fail-fast (the default): a refused connection fails at once with
	// Unavailable; a connect that hangs is bounded by ctx, like the call.
	var pr peer.Peer
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.service}, grpc.Peer(&pr))
	if err != nil {
		return probe.Failure("%s", p.describe(ctx, err, conn.GetState() == connectivity.Ready))
	}
	r := probe.Success("service healthy")
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		r = probe.Failure("service unhealthy (responded with %q)", st.String())
	}
	// Over TLS: the server's earliest certificate expiry, and a warning
	// when it is closer than tls.minValidity.
	if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
		r.CertExpiry = probe.EarliestExpiry(&info.State)
		r.WarnIfExpiring(p.minValidity, time.Now())
	}
	return r
}

// describe words a failed Check as the kubelet's gRPC prober
// (pkg/probe/grpc/grpc.go) does. One difference, deliberate: the kubelet
// dials with WithBlock, so a refused connection is retried until the
// timeout and reported as a connect timeout; healthbridge fails it at
// once, with the kubelet's wording for a connect error and the cause.
func (p *Prober) describe(ctx context.Context, err error, connected bool) string {
	st, _ := status.FromError(err)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || st.Code() == codes.DeadlineExceeded:
		if !connected {
			return fmt.Sprintf("timeout: failed to connect service %q within %v: %v", p.addr, p.timeout, context.DeadlineExceeded)
		}
		return fmt.Sprintf("timeout: health rpc did not complete within %v", p.timeout)
	case st.Code() == codes.Unimplemented:
		return "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): " + st.Message()
	case st.Code() == codes.Unavailable && !connected:
		return fmt.Sprintf("error: failed to connect service at %q: %s", p.addr, st.Message())
	default:
		return fmt.Sprintf("error: health rpc probe failed: %v", err)
	}
}

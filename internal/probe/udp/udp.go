// Package udp is the udp probe: send a datagram, expect a reply (optionally
// matching a regular expression) within the timeout. It is the health of a
// UDP service (DNS, syslog, game servers, WireGuard-style services), the
// reason http-healthcheck-sidecar exists, asked directly.
//
// A closed port is a failure at once, "connection refused": the kernel
// reports the ICMP port-unreachable to a connected UDP socket. Silence is a
// failure at the timeout. A reply is read whole (up to 64 KiB) and its
// first 4096 bytes kept as the output, as any probe's.
package udp

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// Kind is the udp kind: `udp: {host, port, send, expect}`.
var Kind = probe.Kind{
	Name: "udp",
	Has:  func(c *config.Check) bool { return c.UDP != nil },
	Validate: func(c *config.Check, path string) []error {
		var errs []error
		u := c.UDP
		if u.Port < 1 || u.Port > 65535 {
			errs = append(errs, config.Errorf(path+".udp.port", "must be 1-65535, got %d", u.Port))
		}
		if _, err := regexp.Compile(u.Expect); err != nil {
			errs = append(errs, config.Errorf(path+".udp.expect", "not a regular expression: %v", err))
		}
		if u.SendHex != "" {
			if u.Send != "" {
				errs = append(errs, config.Errorf(path+".udp.sendHex", "give send or sendHex, not both"))
			} else if _, err := hex.DecodeString(u.SendHex); err != nil {
				errs = append(errs, config.Errorf(path+".udp.sendHex", "not hexadecimal bytes: %v", err))
			}
		}
		return errs
	},
	New: func(c *config.Check, _ probe.Deps) (probe.Prober, error) {
		u := c.UDP
		payload := u.Send
		if u.SendHex != "" {
			b, err := hex.DecodeString(u.SendHex)
			if err != nil {
				return nil, config.Errorf("udp.sendHex", "not hexadecimal bytes: %v", err)
			}
			payload = string(b)
		}
		return New(config.HostPort(u.Host, int(u.Port)), payload, u.Expect)
	},
	OneShot: &probe.OneShot{
		Words:   []string{"udp"},
		Schemes: []string{"udp"},
		Target:  probe.HostTarget("udp"),
		Usage:   "udp HOST:PORT [--send TEXT | --send-hex HEX] [--expect REGEXP] [--timeout 5s] [-v]",
		Flags: func(fs *pflag.FlagSet) func(probe.Args) (probe.Prober, string, error) {
			payloadFlags := probe.SendFlags(fs, "the datagram")
			expect := fs.String("expect", "", "a regular expression the reply must match")
			return func(a probe.Args) (probe.Prober, string, error) {
				if len(a.Pos) != 2 {
					return nil, "", errors.New("udp: want exactly one HOST:PORT")
				}
				payload, err := payloadFlags()
				if err != nil {
					return nil, "", err
				}
				p, err := New(a.Pos[1], payload, *expect)
				return p, a.Pos[1], err
			}
		},
	},
}

// maxReply is how much of a reply is read: the largest UDP payload.
const maxReply = 64 << 10

// Prober sends one datagram per Probe call and waits for the reply.
type Prober struct {
	addr   string
	send   []byte
	expect *regexp.Regexp // nil: any reply
}

// New builds a udp prober for addr (host:port). An empty expect accepts
// any reply.
func New(addr, send, expect string) (*Prober, error) {
	p := &Prober{addr: addr, send: []byte(send)}
	if expect != "" {
		re, err := regexp.Compile(expect)
		if err != nil {
			return nil, config.Errorf("udp.expect", "not a regular expression: %v", err)
		}
		p.expect = re
	}
	return p, nil
}

// Probe sends the datagram and judges the first reply.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", p.addr)
	if err != nil {
		return probe.Failure("udp %s: %v", p.addr, cause(err))
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	if _, err := c.Write(p.send); err != nil {
		return p.failed(ctx, err)
	}
	buf := make([]byte, maxReply)
	n, err := c.Read(buf)
	if err != nil {
		return p.failed(ctx, err)
	}
	reply := output(buf[:n])
	if p.expect != nil && !p.expect.Match(buf[:n]) {
		return probe.Failure("udp %s: the reply does not match %q: %s", p.addr, p.expect.String(), reply)
	}
	return probe.Success(reply)
}

func (p *Prober) failed(ctx context.Context, err error) probe.Result {
	if ctx.Err() != nil {
		return probe.Failure("udp %s: no reply within the timeout", p.addr)
	}
	return probe.Failure("udp %s: %v", p.addr, cause(err))
}

// output is a reply as a probe output: valid UTF-8, at most
// probe.MaxOutput bytes, truncation marked.
func output(b []byte) string {
	if len(b) > probe.MaxOutput {
		cut := probe.MaxOutput
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return strings.ToValidUTF8(string(b[:cut]), "\uFFFD") + probe.Truncated
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// cause strips net.OpError's repetition of the addresses.
func cause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

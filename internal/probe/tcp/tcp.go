// Package tcp is the tcpSocket probe: success when a TCP connection opens
// within the timeout, as the kubelet's pkg/probe/tcp, with nothing sent
// and the connection closed at once. Beyond the kubelet, a check may hold
// a conversation (send, expect, or steps of both, as HAProxy's tcp-check
// send/expect: Redis' PING/+PONG, memcached's version) and speak TLS
// first; the server's certificate expiry is then recorded.
package tcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/tlsclient"
)

// Kind is the tcpSocket kind: `tcpSocket: {port, host}`, as the kubelet's,
// and send/expect/steps/tls.
var Kind = probe.Kind{
	Name:     "tcpSocket",
	Has:      func(c *config.Check) bool { return c.TCPSocket != nil },
	Validate: validate,
	New:      New,
	OneShot: &probe.OneShot{
		Words:   []string{"tcp"},
		Schemes: []string{"tcp"},
		Target:  probe.HostTarget("tcp"),
		Usage:   "tcp HOST:PORT [--send TEXT | --send-hex HEX] [--expect REGEXP] [--tls] [--insecure] [--ca FILE] [--server-name N] [--timeout 5s] [-v]",
		Flags: func(fs *pflag.FlagSet) func(probe.Args) (probe.Prober, string, error) {
			payloadFlags := probe.SendFlags(fs, "bytes, once connected,")
			expect := fs.String("expect", "", "a regular expression the reply must match")
			useTLS := fs.Bool("tls", false, "speak TLS once connected (implied by --insecure, --ca and --cert)")
			tlsFlags := tlsclient.Flags(fs)
			return func(a probe.Args) (probe.Prober, string, error) {
				if len(a.Pos) != 2 {
					return nil, "", errors.New("tcp: want exactly one HOST:PORT")
				}
				payload, err := payloadFlags()
				if err != nil {
					return nil, "", err
				}
				if _, err := regexp.Compile(*expect); err != nil {
					return nil, "", fmt.Errorf("--expect: not a regular expression: %v", err)
				}
				t := &config.TCPSocketAction{Send: payload, Expect: *expect}
				tc, set, err := tlsFlags()
				if err != nil {
					return nil, "", err
				}
				if !*useTLS && !set {
					tc = nil
				}
				p, err := newProber(a.Pos[1], t, tc, 0)
				return p, a.Pos[1], err
			}
		},
	},
}

// maxReply bounds what one expect reads: 64 KiB, past which the reply
// fails the check (a server that floods cannot grow healthbridge).
const maxReply = 64 << 10

func validate(c *config.Check, path string) []error {
	t := c.TCPSocket
	p := path + ".tcpSocket"
	errs := config.ValidPort(p+".port", t.Port)
	errs = append(errs, validateTalk(t, p)...)
	return append(errs, config.ValidTLS(p+".tls", t.TLS)...)
}

// validateTalk checks send, sendHex, expect and steps, naming fields
// under p.
func validateTalk(t *config.TCPSocketAction, p string) []error {
	var errs []error
	field := func(name string) string { return p + "." + name }
	one := func(path func(string) string, s config.TCPStep) {
		if s.SendHex != "" {
			if _, err := hex.DecodeString(s.SendHex); err != nil {
				errs = append(errs, config.Errorf(path("sendHex"), "not hexadecimal bytes: %v", err))
			}
		}
		if _, err := regexp.Compile(s.Expect); err != nil {
			errs = append(errs, config.Errorf(path("expect"), "not a regular expression: %v", err))
		}
	}
	if t.Send != "" && t.SendHex != "" {
		errs = append(errs, config.Errorf(field("sendHex"), "give send or sendHex, not both"))
	}
	one(field, config.TCPStep{SendHex: t.SendHex, Expect: t.Expect})
	if len(t.Steps) > 0 && (t.Send != "" || t.SendHex != "" || t.Expect != "") {
		errs = append(errs, config.Errorf(p+".steps", "give steps, or send and expect, not both"))
	}
	for i, s := range t.Steps {
		sp := fmt.Sprintf("%s.steps[%d]", p, i)
		n := 0
		for _, v := range []string{s.Send, s.SendHex, s.Expect} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, config.Errorf(sp, "want exactly one of send, sendHex and expect, got %d", n))
		}
		one(func(name string) string { return sp + "." + name }, s)
	}
	return errs
}

// step is one step of a conversation: send, or expect (a nil send).
type step struct {
	send   []byte
	expect *regexp.Regexp
}

// Prober dials one address per Probe call and holds its conversation.
type Prober struct {
	addr        string
	steps       []step      // none: connect and close, as the kubelet
	tls         *tls.Config // nil: plaintext
	minValidity time.Duration
}

// New builds a TCP prober from c.TCPSocket; host defaults to 127.0.0.1.
// TLS files are read now: a bad one is a start-up error.
func New(c *config.Check, _ probe.Deps) (probe.Prober, error) {
	t := c.TCPSocket
	if t == nil {
		return nil, config.Errorf("tcpSocket", "required")
	}
	var tc *tls.Config
	var minValidity time.Duration
	if t.TLS != nil {
		var err error
		if tc, err = tlsclient.Config(t.TLS, "tcpSocket.tls"); err != nil {
			return nil, err
		}
		minValidity = t.TLS.MinValidity.Duration
	}
	return newProber(config.HostPort(t.Host, config.PortNumber(t.Port)), t, tc, minValidity)
}

// NewAddr builds a connect-only prober for a host:port address.
func NewAddr(addr string) *Prober { return &Prober{addr: addr} }

func newProber(addr string, t *config.TCPSocketAction, tc *tls.Config, minValidity time.Duration) (*Prober, error) {
	p := &Prober{addr: addr, tls: tc, minValidity: minValidity}
	steps := t.Steps
	if len(steps) == 0 {
		steps = []config.TCPStep{{Send: t.Send, SendHex: t.SendHex}, {Expect: t.Expect}}
	}
	for _, s := range steps {
		switch {
		case s.SendHex != "":
			b, err := hex.DecodeString(s.SendHex)
			if err != nil {
				return nil, config.Errorf("tcpSocket.sendHex", "not hexadecimal bytes: %v", err)
			}
			p.steps = append(p.steps, step{send: b})
		case s.Send != "":
			p.steps = append(p.steps, step{send: []byte(s.Send)})
		case s.Expect != "":
			re, err := regexp.Compile(s.Expect)
			if err != nil {
				return nil, config.Errorf("tcpSocket.expect", "not a regular expression: %v", err)
			}
			p.steps = append(p.steps, step{expect: re})
		}
	}
	return p, nil
}

// Probe dials the address, speaks TLS and holds the conversation when
// configured, and closes the connection with a reset (probe.Dialer: no
// TIME_WAIT left behind). A refused connection, a failed handshake, a
// reply that does not match, a server that closes or floods, and the
// timeout (ctx) are failures that say which step and what came.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	raw, err := probe.Dialer().DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return probe.Failure("dial tcp %s: %v", p.addr, cause(err))
	}
	defer raw.Close()
	if p.tls == nil && len(p.steps) == 0 {
		return probe.Success("")
	}
	// Whatever blocks (a handshake, a read from a server that never
	// answers) ends when ctx does.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var conn net.Conn = raw
	var certExpiry time.Time
	if p.tls != nil {
		tc := tls.Client(raw, p.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return p.failed(ctx, "tls handshake", err, nil, false)
		}
		cs := tc.ConnectionState()
		certExpiry = probe.EarliestExpiry(&cs)
		conn = tc
	}
	var buf []byte // read and not yet consumed by an expect
	last := ""
	for i, s := range p.steps {
		if s.expect == nil {
			if _, err := conn.Write(s.send); err != nil {
				return p.failed(ctx, fmt.Sprintf("step %d (send)", i+1), err, nil, false)
			}
			continue
		}
		var loc []int
		buf, loc, err = readUntil(conn, buf, s.expect)
		if err != nil {
			return p.failed(ctx, fmt.Sprintf("step %d (expect %q)", i+1, s.expect.String()), err, buf, true)
		}
		last = output(buf[:loc[1]])
		buf = buf[loc[1]:]
	}
	r := probe.Success(last)
	r.CertExpiry = certExpiry
	r.WarnIfExpiring(p.minValidity, time.Now())
	return r
}

// errTooLong: an expect read maxReply bytes without a match.
var errTooLong = errors.New("no match in the first 64 KiB")

// readUntil reads into buf until re matches it, returning buf and the
// match's location; an error when the server closes (io.EOF), floods
// (errTooLong) or the deadline passes, with buf as read so far.
func readUntil(conn net.Conn, buf []byte, re *regexp.Regexp) ([]byte, []int, error) {
	chunk := make([]byte, 4096)
	for {
		if loc := re.FindIndex(buf); loc != nil {
			return buf, loc, nil
		}
		if len(buf) >= maxReply {
			return buf, nil, errTooLong
		}
		n, err := conn.Read(chunk[:min(len(chunk), maxReply-len(buf))])
		buf = append(buf, chunk[:n]...)
		if err != nil {
			if loc := re.FindIndex(buf); loc != nil {
				return buf, loc, nil
			}
			return buf, nil, err
		}
	}
}

// failed words a failure at what: the cause (a timeout when ctx ended,
// "the server closed the connection" for an end or a reset) and, for an
// expect (withGot), what the server sent there, clipped.
func (p *Prober) failed(ctx context.Context, what string, err error, got []byte, withGot bool) probe.Result {
	why := cause(err).Error()
	switch {
	case ctx.Err() != nil:
		why = "no match within the timeout"
		if what == "tls handshake" {
			why = "timeout"
		}
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		// A server that closes with our request unread resets.
		why = "the server closed the connection"
	}
	msg := fmt.Sprintf("tcp %s: %s: %s", p.addr, what, why)
	if withGot {
		msg += "; got " + quoted(got)
	}
	return probe.Failure("%s", msg)
}

// quoted is what a server sent, for a failure's output: at most 100
// bytes, Go-quoted (control bytes escaped), "nothing" when empty.
func quoted(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	if len(b) > 100 {
		return strconv.Quote(string(b[:100])) + fmt.Sprintf(" … (%d bytes)", len(b))
	}
	return strconv.Quote(string(b))
}

// output is a matched reply as a probe output: valid UTF-8, at most
// probe.MaxOutput bytes, truncation marked.
func output(b []byte) string {
	b = bytes.TrimRight(b, "\r\n")
	if len(b) > probe.MaxOutput {
		cut := probe.MaxOutput
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return strings.ToValidUTF8(string(b[:cut]), "\uFFFD") + probe.Truncated
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// cause strips net.OpError's repetition of the address.
func cause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// Package dns is the dns probe: resolve a name within the timeout; success
// when the answer holds at least one record of the asked type (and, with
// expect, that value). exechealthz's own example is -cmd="nslookup
// localhost"; images without nslookup get it natively here.
//
// With a server the query goes to that server alone (UDP, retried over TCP
// when the answer is truncated), so the probe judges that server: its
// rcode (NXDOMAIN, SERVFAIL, REFUSED), silence and a closed port (ICMP
// unreachable) are failures that say which. Without one it asks the
// system's resolver, as a program in the container would.
package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// Kind is the dns kind: `dns: {name, server, type, expect}`.
var Kind = probe.Kind{
	Name: "dns",
	Has:  func(c *config.Check) bool { return c.DNS != nil },
	Defaults: func(c *config.Check) {
		if c.DNS.Type == "" {
			c.DNS.Type = "A"
		}
	},
	Validate: func(c *config.Check, path string) []error {
		return validate(c.DNS, path+".dns")
	},
	New: func(c *config.Check, _ probe.Deps) (probe.Prober, error) { return New(c.DNS) },
	OneShot: &probe.OneShot{
		Words:   []string{"dns"},
		Schemes: []string{"dns"},
		// dns://NAME: the name to resolve (?type=AAAA&server=HOST:PORT).
		Target: func(u *url.URL) ([]string, error) {
			if u.Host == "" || (u.Path != "" && u.Path != "/") {
				return nil, errors.New("want dns://NAME")
			}
			return []string{"dns", u.Host}, nil
		},
		Usage: "dns NAME [--server HOST:PORT] [--type A|AAAA|CNAME|MX|NS|TXT] [--expect VALUE] [--timeout 5s] [-v]",
		Flags: func(fs *pflag.FlagSet) func(probe.Args) (probe.Prober, string, error) {
			var a config.DNSAction
			fs.StringVar(&a.Server, "server", "", "ask this server (HOST:PORT) alone; default: the system's resolver")
			fs.StringVar(&a.Type, "type", "A", "record type: A, AAAA, CNAME, MX, NS or TXT")
			fs.StringVar(&a.Expect, "expect", "", "an answer must equal this (an address, a name or a text)")
			return func(args probe.Args) (probe.Prober, string, error) {
				if len(args.Pos) != 2 {
					return nil, "", errors.New("dns: want exactly one NAME")
				}
				a.Name = args.Pos[1]
				if errs := validate(&a, "dns"); len(errs) > 0 {
					return nil, "", errors.Join(errs...)
				}
				p, err := New(&a)
				return p, a.Type + " " + a.Name, err
			}
		},
	},
}

// types are the record types a dns check may ask for.
var types = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA, "CNAME": dnsmessage.TypeCNAME,
	"MX": dnsmessage.TypeMX, "NS": dnsmessage.TypeNS, "TXT": dnsmessage.TypeTXT,
}

func validate(a *config.DNSAction, path string) []error {
	var errs []error
	if strings.TrimSpace(a.Name) == "" {
		errs = append(errs, config.Errorf(path+".name", "required"))
	} else if _, err := dnsmessage.NewName(fqdn(a.Name)); err != nil {
		errs = append(errs, config.Errorf(path+".name", "%q: %v", a.Name, err))
	}
	if a.Server != "" {
		if _, port, err := net.SplitHostPort(a.Server); err != nil || port == "" {
			errs = append(errs, config.Errorf(path+".server", "must be host:port, got %q", a.Server))
		}
	}
	t, ok := types[strings.ToUpper(a.Type)]
	if !ok {
		errs = append(errs, config.Errorf(path+".type", "must be A, AAAA, CNAME, MX, NS or TXT, got %q", a.Type))
	}
	if a.Expect != "" && (t == dnsmessage.TypeA || t == dnsmessage.TypeAAAA) {
		if _, err := netip.ParseAddr(a.Expect); err != nil {
			errs = append(errs, config.Errorf(path+".expect", "%q is not an address, for a %s query", a.Expect, a.Type))
		}
	}
	return errs
}

// Prober resolves one name per Probe call.
type Prober struct {
	name   string // as given
	server string // host:port, or "" for the system resolver
	typ    dnsmessage.Type
	expect string
}

// New builds a dns prober from a validated action.
func New(a *config.DNSAction) (*Prober, error) {
	t, ok := types[strings.ToUpper(a.Type)]
	if !ok {
		return nil, config.Errorf("dns.type", "unknown type %q", a.Type)
	}
	return &Prober{name: a.Name, server: a.Server, typ: t, expect: a.Expect}, nil
}

// Probe resolves the name and judges the answer.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	var (
		answers []string
		err     error
	)
	if p.server != "" {
		answers, err = p.ask(ctx)
	} else {
		answers, err = p.system(ctx)
	}
	what := typeName(p.typ) + " " + p.name
	if err != nil {
		return probe.Failure("%s: %v", what, err)
	}
	if len(answers) == 0 {
		return probe.Failure("%s: no %s records in the answer", what, typeName(p.typ))
	}
	got := what + ": " + strings.Join(answers, ", ")
	if p.expect != "" && !slices.ContainsFunc(answers, p.matches) {
		return probe.Failure("%s, none is %s", got, p.expect)
	}
	return probe.Success(got)
}

// matches compares an answer with expect: addresses as addresses, names
// without case or the final dot, texts exactly.
func (p *Prober) matches(answer string) bool {
	switch p.typ {
	case dnsmessage.TypeA, dnsmessage.TypeAAAA:
		a, err1 := netip.ParseAddr(answer)
		e, err2 := netip.ParseAddr(p.expect)
		return err1 == nil && err2 == nil && a.Unmap() == e.Unmap()
	case dnsmessage.TypeTXT:
		return answer == p.expect
	default:
		// MX answers are "preference host": compare the host.
		f := strings.Fields(answer)
		if len(f) == 0 {
			return false
		}
		return strings.EqualFold(strings.TrimSuffix(f[len(f)-1], "."), strings.TrimSuffix(p.expect, "."))
	}
}

// maxUDP is the largest UDP answer read; larger ones come truncated (TC)
// and are asked again over TCP.
const maxUDP = 4096

// ask sends the query to the server and returns the answers of the asked
// type. The context bounds the whole exchange.
func (p *Prober) ask(ctx context.Context) ([]string, error) {
	id := uint16(rand.Uint32())
	q, err := p.query(id)
	if err != nil {
		return nil, err
	}
	msg, err := exchangeUDP(ctx, p.server, q, id)
	if err == nil && msg.Header.Truncated {
		msg, err = exchangeTCP(ctx, p.server, q, id)
	}
	if err != nil {
		return nil, err
	}
	return p.records(msg)
}

// records are the answers of the asked type in a server's message, as
// text: addresses, names with their final dot, "preference host" for MX,
// a TXT record's strings joined. A response code other than NOERROR is an
// error naming it.
func (p *Prober) records(msg *dnsmessage.Message) ([]string, error) {
	if rc := msg.Header.RCode; rc != dnsmessage.RCodeSuccess {
		return nil, fmt.Errorf("server %s answered %s", p.server, rcodeName(rc))
	}
	var out []string
	for _, rr := range msg.Answers {
		if rr.Header.Type != p.typ {
			continue
		}
		switch b := rr.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, netip.AddrFrom4(b.A).String())
		case *dnsmessage.AAAAResource:
			out = append(out, netip.AddrFrom16(b.AAAA).String())
		case *dnsmessage.CNAMEResource:
			out = append(out, b.CNAME.String())
		case *dnsmessage.MXResource:
			out = append(out, fmt.Sprintf("%d %s", b.Pref, b.MX.String()))
		case *dnsmessage.NSResource:
			out = append(out, b.NS.String())
		case *dnsmessage.TXTResource:
			out = append(out, strings.Join(b.TXT, ""))
		}
	}
	return out, nil
}

func (p *Prober) query(id uint16) ([]byte, error) {
	name, err := dnsmessage.NewName(fqdn(p.name))
	if err != nil {
		return nil, err
	}
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: name, Type: p.typ, Class: dnsmessage.ClassINET}},
	}
	return m.Pack()
}

func exchangeUDP(ctx context.Context, server string, q []byte, id uint16) (*dnsmessage.Message, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	if _, err := c.Write(q); err != nil {
		return nil, describe(ctx, server, err)
	}
	buf := make([]byte, maxUDP)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, describe(ctx, server, err)
		}
		var m dnsmessage.Message
		if m.Unpack(buf[:n]) == nil && m.Header.ID == id && m.Header.Response {
			return &m, nil
		}
		// Not the answer to this query (a stray or spoofed datagram): keep
		// reading until the deadline.
	}
}

func exchangeTCP(ctx context.Context, server string, q []byte, id uint16) (*dnsmessage.Message, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, describe(ctx, server, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	if _, err := c.Write(append(frame, q...)); err != nil {
		return nil, describe(ctx, server, err)
	}
	var size [2]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, describe(ctx, server, err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(size[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, describe(ctx, server, err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf); err != nil {
		return nil, fmt.Errorf("server %s: bad answer over TCP: %v", server, err)
	}
	if m.Header.ID != id {
		return nil, fmt.Errorf("server %s: answer over TCP to another query", server)
	}
	return &m, nil
}

// describe says why an exchange failed: no answer before the timeout, or
// the network's error (a closed UDP port reads as "connection refused").
func describe(ctx context.Context, server string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("no answer from %s within the timeout", server)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return fmt.Errorf("server %s: %v", server, err)
}

// system asks the system's resolver (resolv.conf, /etc/hosts).
func (p *Prober) system(ctx context.Context) ([]string, error) {
	r := net.DefaultResolver
	var out []string
	var err error
	switch p.typ {
	case dnsmessage.TypeA, dnsmessage.TypeAAAA:
		network := "ip4"
		if p.typ == dnsmessage.TypeAAAA {
			network = "ip6"
		}
		var ips []netip.Addr
		ips, err = r.LookupNetIP(ctx, network, p.name)
		for _, ip := range ips {
			out = append(out, ip.Unmap().String())
		}
	case dnsmessage.TypeCNAME:
		var c string
		if c, err = r.LookupCNAME(ctx, p.name); c != "" {
			out = append(out, c)
		}
	case dnsmessage.TypeMX:
		var mx []*net.MX
		mx, err = r.LookupMX(ctx, p.name)
		for _, m := range mx {
			out = append(out, fmt.Sprintf("%d %s", m.Pref, m.Host))
		}
	case dnsmessage.TypeNS:
		var ns []*net.NS
		ns, err = r.LookupNS(ctx, p.name)
		for _, n := range ns {
			out = append(out, n.Host)
		}
	case dnsmessage.TypeTXT:
		out, err = r.LookupTXT(ctx, p.name)
	}
	var de *net.DNSError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, errors.New("no answer from the system's resolver within the timeout")
	case errors.As(err, &de) && de.IsNotFound:
		return nil, errors.New("no such name (system resolver)")
	default:
		return nil, err
	}
	return out, nil
}

func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func typeName(t dnsmessage.Type) string { return strings.TrimPrefix(t.String(), "Type") }

func rcodeName(rc dnsmessage.RCode) string {
	switch rc {
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN (no such name)"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	default:
		return strings.TrimPrefix(rc.String(), "RCode")
	}
}

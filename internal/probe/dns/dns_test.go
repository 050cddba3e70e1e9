package dns

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// zone is what the test server knows.
var zone = map[string][]string{
	"web.test. A":       {"web.test. 60 IN A 127.0.0.10", "web.test. 60 IN A 127.0.0.11"},
	"web.test. AAAA":    {"web.test. 60 IN AAAA ::1"},
	"alias.test. CNAME": {"alias.test. 60 IN CNAME web.test."},
	"mail.test. MX":     {"mail.test. 60 IN MX 10 mx1.test."},
	"info.test. TXT":    {`info.test. 60 IN TXT "v=ok"`},
	"empty.test. A":     nil, // exists, no A records
}

// server is a real DNS server on loopback (miekg/dns), UDP and TCP on one
// port. Names ending in big.test. answer truncated over UDP, fully over
// TCP; broken.test. is SERVFAIL.
func server(t *testing.T) string {
	t.Helper()
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		key := q.Name + " " + mdns.TypeToString[q.Qtype]
		switch {
		case q.Name == "broken.test.":
			m.Rcode = mdns.RcodeServerFailure
		case q.Name == "big.test.":
			if w.LocalAddr().Network() == "udp" {
				m.Truncated = true
			} else {
				rr, _ := mdns.NewRR("big.test. 60 IN A 127.0.0.99")
				m.Answer = append(m.Answer, rr)
			}
		default:
			rrs, ok := zone[key]
			if !ok && !strings.HasPrefix(q.Name, "empty.") && zone[q.Name+" A"] == nil && zone[q.Name+" CNAME"] == nil {
				m.Rcode = mdns.RcodeNameError
			}
			for _, s := range rrs {
				rr, err := mdns.NewRR(s)
				if err != nil {
					t.Error(err)
				}
				m.Answer = append(m.Answer, rr)
			}
		}
		_ = w.WriteMsg(m)
	})
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil { // the TCP port is taken: try another
			pc.Close()
			if attempt > 10 {
				t.Fatal(err)
			}
			continue
		}
		udp := &mdns.Server{PacketConn: pc, Handler: handler}
		tcp := &mdns.Server{Listener: ln, Handler: handler}
		go func() { _ = udp.ActivateAndServe() }()
		go func() { _ = tcp.ActivateAndServe() }()
		t.Cleanup(func() { _ = udp.Shutdown(); _ = tcp.Shutdown() })
		return pc.LocalAddr().String()
	}
}

func check(t *testing.T, a config.DNSAction) probe.Result {
	t.Helper()
	c := &config.Check{DNS: &a}
	Kind.Defaults(c)
	if errs := Kind.Validate(c, "checks[0]"); len(errs) > 0 {
		t.Fatal(errs)
	}
	p, err := Kind.New(c, probe.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := probe.Run(t.Context(), p, 2*time.Second)
	return r
}

func TestAgainstARealServer(t *testing.T) {
	srv := server(t)
	for _, tt := range []struct {
		name   string
		a      config.DNSAction
		want   probe.Outcome
		output string
	}{
		{"A", config.DNSAction{Name: "web.test", Server: srv}, probe.OutcomeSuccess, "A web.test: 127.0.0.10, 127.0.0.11"},
		{"A with the expected address", config.DNSAction{Name: "web.test", Server: srv, Expect: "127.0.0.11"}, probe.OutcomeSuccess, "127.0.0.11"},
		{"A without the expected address", config.DNSAction{Name: "web.test", Server: srv, Expect: "127.0.0.12"}, probe.OutcomeFailure, "none is 127.0.0.12"},
		{"AAAA", config.DNSAction{Name: "web.test.", Server: srv, Type: "AAAA", Expect: "::1"}, probe.OutcomeSuccess, "::1"},
		{"CNAME", config.DNSAction{Name: "alias.test", Server: srv, Type: "CNAME", Expect: "WEB.test"}, probe.OutcomeSuccess, "web.test."},
		{"MX", config.DNSAction{Name: "mail.test", Server: srv, Type: "MX", Expect: "mx1.test."}, probe.OutcomeSuccess, "10 mx1.test."},
		{"TXT", config.DNSAction{Name: "info.test", Server: srv, Type: "TXT", Expect: "v=ok"}, probe.OutcomeSuccess, "v=ok"},
		{"NXDOMAIN", config.DNSAction{Name: "nope.test", Server: srv}, probe.OutcomeFailure, "answered NXDOMAIN"},
		{"SERVFAIL", config.DNSAction{Name: "broken.test", Server: srv}, probe.OutcomeFailure, "answered SERVFAIL"},
		{"no records of the type", config.DNSAction{Name: "empty.test", Server: srv}, probe.OutcomeFailure, "no A records in the answer"},
		{"truncated over UDP: asked again over TCP", config.DNSAction{Name: "big.test", Server: srv}, probe.OutcomeSuccess, "127.0.0.99"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := check(t, tt.a)
			if r.Outcome != tt.want || !strings.Contains(r.Output, tt.output) {
				t.Fatalf("%v %q, want %v containing %q", r.Outcome, r.Output, tt.want, tt.output)
			}
		})
	}
}

// TestSilenceAndClosedPort: a server that never answers is a timeout
// failure within the timeout; a closed UDP port (ICMP unreachable) fails
// at once, saying so.
func TestSilenceAndClosedPort(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	start := time.Now()
	r := check(t, config.DNSAction{Name: "web.test", Server: silent.LocalAddr().String()})
	if r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "no answer from") || time.Since(start) > 2*time.Second+probe.AbandonGrace {
		t.Fatalf("silent server: %v %q after %v", r.Outcome, r.Output, time.Since(start))
	}
	closed, _ := net.ListenPacket("udp", "127.0.0.1:0")
	addr := closed.LocalAddr().String()
	closed.Close()
	r = check(t, config.DNSAction{Name: "web.test", Server: addr})
	if r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "connection refused") {
		t.Fatalf("closed port: %v %q", r.Outcome, r.Output)
	}
}

func TestSystemResolver(t *testing.T) {
	// /etc/hosts names localhost on every machine the tests run on.
	r := check(t, config.DNSAction{Name: "localhost", Expect: "127.0.0.1"})
	if r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("%v %q", r.Outcome, r.Output)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	p, _ := New(&config.DNSAction{Name: "no-such-name.invalid", Type: "A"})
	if r := p.Probe(ctx); r.Outcome != probe.OutcomeFailure {
		t.Fatalf("an invalid name: %v %q", r.Outcome, r.Output)
	}
}

func TestValidation(t *testing.T) {
	c := &config.Check{DNS: &config.DNSAction{Server: "nohost", Type: "SOA", Expect: "x"}}
	got := Kind.Validate(c, "checks[3]")
	want := []string{
		"checks[3].dns.name: required",
		`checks[3].dns.server: must be host:port, got "nohost"`,
		`checks[3].dns.type: must be A, AAAA, CNAME, MX, NS or TXT, got "SOA"`,
	}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i].Error() != want[i] {
			t.Errorf("%q, want %q", got[i], want[i])
		}
	}
	c = &config.Check{DNS: &config.DNSAction{Name: "a", Expect: "not-an-ip"}}
	Kind.Defaults(c)
	if errs := Kind.Validate(c, "checks[0]"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "checks[0].dns.expect") {
		t.Fatalf("%v", errs)
	}
}

// TestOneShot: `healthbridge probe dns NAME --server … --type … --expect …`.
func TestOneShot(t *testing.T) {
	srv := server(t)
	fs := pflag.NewFlagSet("probe", pflag.ContinueOnError)
	build := Kind.OneShot.Flags(fs)
	if err := fs.Parse([]string{"--server", srv, "--type", "AAAA", "--expect", "::1"}); err != nil {
		t.Fatal(err)
	}
	p, what, err := build(probe.Args{Pos: []string{"dns", "web.test"}, Timeout: 2 * time.Second})
	if err != nil || what != "AAAA web.test" {
		t.Fatalf("%q %v", what, err)
	}
	if r, _ := probe.Run(t.Context(), p, 2*time.Second); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("%v %q", r.Outcome, r.Output)
	}
	if _, _, err := build(probe.Args{Pos: []string{"dns"}}); err == nil {
		t.Fatal("no name accepted")
	}
}

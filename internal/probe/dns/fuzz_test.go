package dns

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/healthbridge/healthbridge/internal/config"
)

// FuzzAnswers: any bytes a server (or a spoofer) sends back are read as
// the dns kind reads them, without a panic; an A or AAAA answer is always
// an address, and every answer can be judged against any expect.
func FuzzAnswers(f *testing.F) {
	name := dnsmessage.MustNewName("db.internal.")
	for _, rr := range []dnsmessage.ResourceBody{
		&dnsmessage.AResource{A: [4]byte{10, 0, 0, 5}},
		&dnsmessage.AAAAResource{AAAA: [16]byte{15: 1}},
		&dnsmessage.MXResource{Pref: 10, MX: name},
		&dnsmessage.TXTResource{TXT: []string{"v=spf1", " -all"}},
		&dnsmessage.CNAMEResource{CNAME: name},
	} {
		m := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, Response: true},
			Answers: []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET}, Body: rr}}}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "A", "10.0.0.5")
		f.Add(b, "MX", "db.internal")
	}
	f.Add([]byte{0, 7, 0x80, 3, 0, 0, 0, 0, 0, 0, 0, 0}, "A", "") // NXDOMAIN
	f.Fuzz(func(t *testing.T, reply []byte, typ, expect string) {
		p, err := New(&config.DNSAction{Name: "db.internal", Server: "127.0.0.1:53", Type: typ, Expect: expect})
		if err != nil {
			return
		}
		var m dnsmessage.Message
		if m.Unpack(reply) != nil {
			return
		}
		answers, err := p.records(&m)
		if err != nil {
			if m.Header.RCode == dnsmessage.RCodeSuccess || !strings.HasPrefix(err.Error(), "server 127.0.0.1:53 answered ") {
				t.Fatalf("rcode %v: %v", m.Header.RCode, err)
			}
			return
		}
		for _, a := range answers {
			if p.typ == dnsmessage.TypeA || p.typ == dnsmessage.TypeAAAA {
				if ip, err := netip.ParseAddr(a); err != nil || ip.Is4() != (p.typ == dnsmessage.TypeA) {
					t.Fatalf("%v answer %q is no such address", typeName(p.typ), a)
				}
			}
			_ = p.matches(a)
		}
	})
}

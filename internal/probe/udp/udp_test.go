package udp

import (
	"bytes"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// echo is a real UDP service on loopback: it answers "pong:<datagram>",
// or a 10 KB reply to "big".
func echo(t *testing.T) (host string, port int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			reply := append([]byte("pong:"), buf[:n]...)
			if string(buf[:n]) == "big" {
				reply = bytes.Repeat([]byte("b"), 10000)
			}
			_, _ = pc.WriteTo(reply, from)
		}
	}()
	a := pc.LocalAddr().(*net.UDPAddr)
	return a.IP.String(), int32(a.Port)
}

func run(t *testing.T, u config.UDPAction) (probe.Result, time.Duration) {
	t.Helper()
	c := &config.Check{UDP: &u}
	if errs := Kind.Validate(c, "checks[0]"); len(errs) > 0 {
		t.Fatal(errs)
	}
	p, err := Kind.New(c, probe.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, _ := probe.Run(t.Context(), p, time.Second)
	return r, time.Since(start)
}

func TestAgainstARealService(t *testing.T) {
	host, port := echo(t)
	for _, tt := range []struct {
		name   string
		u      config.UDPAction
		want   probe.Outcome
		output string
	}{
		{"any reply", config.UDPAction{Host: host, Port: port, Send: "ping"}, probe.OutcomeSuccess, "pong:ping"},
		{"host defaults to 127.0.0.1", config.UDPAction{Port: port, Send: "x"}, probe.OutcomeSuccess, "pong:x"},
		{"reply matches", config.UDPAction{Host: host, Port: port, Send: "ping", Expect: "^pong:p.ng$"}, probe.OutcomeSuccess, "pong:ping"},
		{"reply does not match", config.UDPAction{Host: host, Port: port, Send: "ping", Expect: "^PONG"}, probe.OutcomeFailure, `the reply does not match "^PONG": pong:ping`},
		{"a long reply is kept to 4096 bytes", config.UDPAction{Host: host, Port: port, Send: "big"}, probe.OutcomeSuccess, strings.Repeat("b", 4096) + "..."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := run(t, tt.u)
			if r.Outcome != tt.want || !strings.Contains(r.Output, tt.output) {
				t.Fatalf("%v %q, want %v containing %q", r.Outcome, r.Output[:min(len(r.Output), 100)], tt.want, tt.output[:min(len(tt.output), 100)])
			}
		})
	}
}

// TestClosedPortAndSilence: a closed port (ICMP port unreachable) fails
// at once saying so; a service that never answers fails at the timeout.
func TestClosedPortAndSilence(t *testing.T) {
	closed, _ := net.ListenPacket("udp", "127.0.0.1:0")
	port := int32(closed.LocalAddr().(*net.UDPAddr).Port)
	closed.Close()
	r, took := run(t, config.UDPAction{Port: port, Send: "ping"})
	if r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "connection refused") {
		t.Fatalf("closed port: %v %q", r.Outcome, r.Output)
	}
	if took >= time.Second {
		t.Fatalf("closed port took the whole timeout (%v): the unreachable was not seen", took)
	}
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	r, _ = run(t, config.UDPAction{Port: int32(silent.LocalAddr().(*net.UDPAddr).Port), Send: "ping"})
	if r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "no reply within the timeout") {
		t.Fatalf("silence: %v %q", r.Outcome, r.Output)
	}
}

func TestValidation(t *testing.T) {
	errs := Kind.Validate(&config.Check{UDP: &config.UDPAction{Port: 70000, Expect: "("}}, "checks[1]")
	if len(errs) != 2 || errs[0].Error() != "checks[1].udp.port: must be 1-65535, got 70000" ||
		!strings.HasPrefix(errs[1].Error(), "checks[1].udp.expect: not a regular expression") {
		t.Fatalf("%v", errs)
	}
}

// TestOneShot: `healthbridge probe udp HOST:PORT --send 'ping\n' --expect …`.
func TestOneShot(t *testing.T) {
	host, port := echo(t)
	fs := pflag.NewFlagSet("probe", pflag.ContinueOnError)
	build := Kind.OneShot.Flags(fs)
	if err := fs.Parse([]string{"--send", `ping\n`, "--expect", `^pong:ping\n$`}); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	p, what, err := build(probe.Args{Pos: []string{"udp", addr}, Timeout: time.Second})
	if err != nil || what != addr {
		t.Fatalf("%q %v", what, err)
	}
	if r, _ := probe.Run(t.Context(), p, time.Second); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("%v %q", r.Outcome, r.Output)
	}
}

// recorder is a real UDP service on loopback that keeps the bytes of each
// datagram it receives, and answers "ok".
func recorder(t *testing.T) (string, <-chan []byte) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	got := make(chan []byte, 16)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- bytes.Clone(buf[:n])
			_, _ = pc.WriteTo([]byte("ok"), from)
		}
	}()
	return pc.LocalAddr().String(), got
}

// sourceQuery is the Source Engine server query (A2S_INFO), the classic
// binary UDP health check of game servers.
var sourceQuery = append([]byte{0xff, 0xff, 0xff, 0xff}, "TSource Engine Query\x00"...)

// TestBinaryPayloadsAreSentAsBytes: \xff in --send is the byte 0xff (not
// its UTF-8 encoding c3 bf), and sendHex (config) and --send-hex say any
// bytes at all.
func TestBinaryPayloadsAreSentAsBytes(t *testing.T) {
	addr, got := recorder(t)
	oneShot := func(args ...string) {
		t.Helper()
		fs := pflag.NewFlagSet("udp", pflag.ContinueOnError)
		build := Kind.OneShot.Flags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		p, _, err := build(probe.Args{Pos: []string{"udp", addr}})
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := probe.Run(t.Context(), p, 5*time.Second); r.Outcome != probe.OutcomeSuccess {
			t.Fatalf("%v: %v %q", args, r.Outcome, r.Output)
		}
	}
	oneShot("--send", `\xff\xff\xff\xffTSource Engine Query\x00`)
	if b := <-got; !bytes.Equal(b, sourceQuery) {
		t.Fatalf("--send sent % x, want % x", b, sourceQuery)
	}
	oneShot("--send-hex", hex.EncodeToString(sourceQuery))
	if b := <-got; !bytes.Equal(b, sourceQuery) {
		t.Fatalf("--send-hex sent % x, want % x", b, sourceQuery)
	}
	oneShot("--send", `caf\u00e9 \303\251`) // \u is UTF-8; octal bytes are bytes
	if b := <-got; string(b) != "café é" {
		t.Fatalf("--send sent % x, want %q", b, "café é")
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	if r, _ := run(t, config.UDPAction{Host: host, Port: int32(p), SendHex: hex.EncodeToString(sourceQuery)}); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("sendHex: %v %q", r.Outcome, r.Output)
	}
	if b := <-got; !bytes.Equal(b, sourceQuery) {
		t.Fatalf("sendHex sent % x, want % x", b, sourceQuery)
	}
	for _, u := range []config.UDPAction{{Port: 1, SendHex: "zz"}, {Port: 1, SendHex: "fff"}, {Port: 1, Send: "a", SendHex: "61"}} {
		errs := Kind.Validate(&config.Check{UDP: &u}, "checks[0]")
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "checks[0].udp.sendHex: ") {
			t.Fatalf("%+v: %v", u, errs)
		}
	}
}

// FuzzUnescape: any bytes, written with Go's escapes (strconv.Quote), read
// back as the same bytes.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"", "ping\n", string(sourceQuery), "caf\u00e9", "\x00\x7f\x80\xfe", `\`, `\\x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q := strconv.Quote(string(b))
		got, err := probe.Unescape(q[1 : len(q)-1])
		if err != nil {
			t.Fatalf("unescape(%s): %v", q, err)
		}
		if got != string(b) {
			t.Fatalf("unescape(%s) = % x, want % x", q, got, b)
		}
		// Whatever it is given, unescape errs or returns; a string
		// without a backslash is kept as it is.
		if u, err := probe.Unescape(string(b)); err == nil && !bytes.Contains(b, []byte(`\`)) && u != string(b) {
			t.Fatalf("unescape(%q) = %q: changed a string without escapes", b, u)
		}
	})
}

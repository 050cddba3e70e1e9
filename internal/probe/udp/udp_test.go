package udp

import (
	"bytes"
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

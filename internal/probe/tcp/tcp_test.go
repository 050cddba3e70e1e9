package tcp

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	c := &config.Check{}
	c.TCPSocket = &config.TCPSocketAction{Port: config.FromInt(port)} // host defaults to 127.0.0.1
	p, err := New(c, probe.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if r := p.Probe(ctx); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("open port: %v %q", r.Outcome, r.Output)
	}
	<-accepted

	ln.Close()
	r := p.Probe(ctx)
	if r.Outcome != probe.OutcomeFailure || !strings.Contains(r.Output, "connection refused") {
		t.Fatalf("closed port: %v %q", r.Outcome, r.Output)
	}

	// An expired context is a failure, promptly.
	done, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if r := NewAddr("127.0.0.1:1").Probe(done); r.Outcome != probe.OutcomeFailure {
		t.Fatalf("cancelled: %v", r.Outcome)
	}
}

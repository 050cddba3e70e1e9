package tcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
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

// timeWaitTo counts sockets in TIME_WAIT (state 06 in /proc/net/tcp)
// whose remote end is 127.0.0.1:port, i.e. left by connections to it.
func timeWaitTo(t *testing.T, port int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skip("no /proc/net/tcp:", err)
	}
	want := fmt.Sprintf("0100007F:%04X", port)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == want && f[3] == "06" {
			n++
		}
	}
	return n
}

// TestProbesLeaveNoTimeWait: 200 probes of a listener that waits for the
// prober to close leave no socket in TIME_WAIT (probe.Dialer's linger of
// 0); the same connects with a plain dialer leave one each (most of them
// counted), which shows the count can see them. The target reads resets.
func TestProbesLeaveNoTimeWait(t *testing.T) {
	run := func(probeOnce func(addr string)) (timeWait int, resets int) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var wg sync.WaitGroup
		var mu sync.Mutex
		acceptDone := make(chan struct{})
		go func() {
			defer close(acceptDone)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Wait for the prober's close, so it closes first.
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, err := c.Read(make([]byte, 1))
					if errors.Is(err, syscall.ECONNRESET) {
						mu.Lock()
						resets++
						mu.Unlock()
					}
					c.Close()
				}()
			}
		}()
		const n = 200
		for range n {
			probeOnce(ln.Addr().String())
		}
		ln.Close()
		<-acceptDone // every wg.Add has happened
		wg.Wait()
		return timeWaitTo(t, ln.Addr().(*net.TCPAddr).Port), resets
	}
	tw, resets := run(func(addr string) {
		if r := NewAddr(addr).Probe(t.Context()); r.Outcome != probe.OutcomeSuccess {
			t.Fatalf("probe: %+v", r)
		}
	})
	// Every probe ends in a reset; the target reads ECONNRESET for each one
	// it accepted before the reset arrived (one reset while still queued
	// is dropped by the kernel, and Go's Accept skips it), so on a loaded
	// machine it sees somewhat fewer than 200.
	if tw != 0 || resets == 0 {
		t.Errorf("probes: %d sockets in TIME_WAIT, %d resets seen by the target; want 0 and some", tw, resets)
	}
	plain, _ := run(func(addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	// /proc/net/tcp is read in pieces while other tests open and close
	// sockets, so a few entries can be missed: most of the 200 is enough.
	if plain < 100 {
		t.Errorf("plain connects left %d sockets in TIME_WAIT, want about 200: the count does not see them", plain)
	}
}

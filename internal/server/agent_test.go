package server

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

func TestAgentLine(t *testing.T) {
	newS := func() *state.Store {
		return state.NewStore([]state.Spec{
			{Name: "web", Kind: "httpGet", Roles: []config.Role{config.RoleReadiness}, Policy: state.Policy{FailureThreshold: 2}},
		}, t0)
	}
	s := newS()
	if got := AgentLine(s.Snapshot(), state.ScopeReadiness, false, 0); got != "down\n" {
		t.Fatalf("starting: %q", got)
	}
	if got := AgentLine(s.Snapshot(), state.ScopeReadiness, true, 0); got != "down #web: starting\n" {
		t.Fatalf("starting, exposed: %q", got)
	}
	record(s, "web", probe.OutcomeSuccess, "")
	if got := AgentLine(s.Snapshot(), state.ScopeReadiness, false, 0); got != "up ready\n" {
		t.Fatalf("healthy: %q", got)
	}
	if got := AgentLine(s.Snapshot(), state.ScopeReadiness, false, 50); got != "up ready 100%\n" {
		t.Fatalf("healthy with weights: %q", got)
	}
	record(s, "web", probe.OutcomeFailure, "refused\nsecond line")
	if got := AgentLine(s.Snapshot(), state.ScopeReadiness, false, 50); got != "up ready 50%\n" {
		t.Fatalf("one failure below threshold: %q", got)
	}
	record(s, "web", probe.OutcomeFailure, "refused\nsecond line")
	if got := AgentLine(s.Snapshot(), state.ScopeReadiness, true, 50); got != "down #web: refused second line\n" {
		t.Fatalf("unhealthy, exposed: %q", got)
	}
	s.SetShuttingDown()
	if got := AgentLine(s.Snapshot(), state.ScopeReadiness, true, 50); got != "drain\n" {
		t.Fatalf("shutting down: %q", got)
	}
}

func TestAgentServesOneLineAndCloses(t *testing.T) {
	s := state.NewStore([]state.Spec{{Name: "a", Kind: "tcpSocket", Roles: []config.Role{config.RoleReadiness}}}, t0)
	record(s, "a", probe.OutcomeSuccess, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := NewAgent(s, state.ScopeReadiness, false, 0)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ln) }()
	for _, send := range []string{"", "be/srv1\n"} { // with and without agent-send
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if send != "" {
			_, _ = io.WriteString(c, send)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c) // the agent closes after its line
		c.Close()
		if err != nil || string(b) != "up ready\n" {
			t.Fatalf("read %q, %v", b, err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
}

// TestAgentCloseWhileConnectionsArrive: Close races new connections; no
// answer may start after Close began waiting (under -race, a WaitGroup Add
// concurrent with its Wait is reported), and Close before Serve works.
func TestAgentCloseWhileConnectionsArrive(t *testing.T) {
	s := state.NewStore([]state.Spec{{Name: "a", Kind: "tcpSocket", Roles: []config.Role{config.RoleReadiness}}}, t0)
	for range 30 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := NewAgent(s, state.ScopeReadiness, false, 0)
		done := make(chan error, 1)
		go func() { done <- a.Serve(ln) }()
		stop := make(chan struct{})
		dialed := make(chan struct{})
		go func() {
			defer close(dialed)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
					c.Close()
				}
			}
		}()
		time.Sleep(2 * time.Millisecond)
		if err := a.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatal(err)
		}
		close(stop)
		<-dialed
		if err := <-done; err != nil {
			t.Fatalf("Serve: %v", err)
		}
	}
	// Close before Serve: Serve returns at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := NewAgent(s, state.ScopeReadiness, false, 0)
	_ = a.Close()
	if err := a.Serve(ln); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
}

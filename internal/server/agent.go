package server

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// agentDeadline bounds one agent-check exchange.
const agentDeadline = 2 * time.Second

// Agent serves HAProxy's agent-check protocol (HAProxy's configuration
// manual, "agent-check"): HAProxy opens a TCP connection, the agent writes
// one line of words and closes. The line is AgentLine's.
type Agent struct {
	store      *state.Store
	scope      state.Scope
	expose     bool
	warnWeight int

	// mu guards ln and closed, and orders wg.Add before Close's wg.Wait:
	// no answer starts once closed is set.
	mu     sync.Mutex
	ln     net.Listener
	closed bool
	wg     sync.WaitGroup // answers in flight
}

// NewAgent returns an agent reporting scope's verdict from store. expose
// adds the failing check and its output after '#'; warnWeight (1-100, 0
// off) is the weight reported while passing with a warning.
func NewAgent(store *state.Store, scope state.Scope, expose bool, warnWeight int) *Agent {
	return &Agent{store: store, scope: scope, expose: expose, warnWeight: warnWeight}
}

// AgentLine is the agent's answer for a snapshot, newline included:
//
//   - "drain" while shutting down (between SIGTERM and exit): HAProxy sends
//     no new sessions while existing ones finish;
//   - "down" when the scope fails, with "#<check>: <output>" when expose;
//   - "up ready" when it passes: "up" reverts a DOWN and "ready" a DRAIN or
//     MAINT that this agent set earlier, since only the agent may revert
//     its own actions; with warnWeight, "100%" or "<warnWeight>%" follows.
func AgentLine(snap *state.Snapshot, sc state.Scope, expose bool, warnWeight int) string {
	if snap.ShuttingDown {
		return "drain\n"
	}
	v := snap.Evaluate(sc, nil)
	if !v.OK {
		line := "down"
		if expose {
			for _, e := range v.Entries {
				if e.OK {
					continue
				}
				reason := e.Check.State.Status.String()
				if last, ok := e.Check.State.Last(); ok && oneLine(last.Output) != "" {
					reason = oneLine(last.Output)
				}
				if len(reason) > maxAgentReason {
					reason = reason[:maxAgentReason] + "..."
				}
				line += " #" + e.Check.Name + ": " + reason
				break
			}
		}
		return line + "\n"
	}
	line := "up ready"
	if warnWeight > 0 {
		w := 100
		for _, e := range v.Entries {
			if last, ok := e.Check.State.Last(); ok && last.Outcome != probe.OutcomeSuccess {
				w = warnWeight
			}
		}
		line += " " + strconv.Itoa(w) + "%"
	}
	return line + "\n"
}

// maxAgentReason bounds the reason after '#' in an agent line.
const maxAgentReason = 200

// Serve answers connections on ln until Close. It returns nil after Close.
func (a *Agent) Serve(ln net.Listener) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	a.ln = ln
	a.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			_ = c.Close()
			return nil
		}
		a.wg.Add(1)
		a.mu.Unlock()
		go a.answer(c)
	}
}

func (a *Agent) answer(c net.Conn) {
	defer func() {
		c.Close()
		a.wg.Done()
	}()
	_ = c.SetDeadline(time.Now().Add(agentDeadline))
	line := AgentLine(a.store.Snapshot(), a.scope, a.expose, a.warnWeight)
	if _, err := io.WriteString(c, line); err != nil {
		return
	}
	// Half-close, then drain what HAProxy may have sent (agent-send), so
	// that closing with unread data does not reset the connection before
	// HAProxy has read the line.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// Close stops accepting and waits for the answers in flight (each bounded
// by a 2 s deadline). It is safe to call more than once, and before Serve
// (which then returns nil at once).
func (a *Agent) Close() error {
	a.mu.Lock()
	var err error
	if a.ln != nil && !a.closed {
		err = a.ln.Close()
	}
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
	return err
}

package state

import (
	"github.com/healthbridge/healthbridge/internal/config"
)

// Scope selects the checks an endpoint covers.
type Scope int

const (
	scopeInvalid Scope = iota
	// ScopeAll covers every check (/healthz).
	ScopeAll
	// ScopeLiveness covers liveness checks (/livez).
	ScopeLiveness
	// ScopeReadiness covers readiness checks (/readyz); it also fails while
	// shutting down.
	ScopeReadiness
	// ScopeStartup covers startup checks (/startupz).
	ScopeStartup
	scopeCount
)

// String returns the scope's endpoint name without the slash: healthz,
// livez, readyz, startupz.
func (sc Scope) String() string {
	switch sc {
	case ScopeAll:
		return "healthz"
	case ScopeLiveness:
		return "livez"
	case ScopeReadiness:
		return "readyz"
	case ScopeStartup:
		return "startupz"
	default:
		return "invalid"
	}
}

// ScopeForRole returns the scope of a role's endpoint; RoleUnknown gives
// ScopeAll.
func ScopeForRole(r config.Role) Scope {
	switch r {
	case config.RoleLiveness:
		return ScopeLiveness
	case config.RoleReadiness:
		return ScopeReadiness
	case config.RoleStartup:
		return ScopeStartup
	default:
		return ScopeAll
	}
}

// Covers reports whether the scope includes a check with info i.
func (sc Scope) Covers(i *Spec) bool {
	switch sc {
	case ScopeAll:
		return true
	case ScopeLiveness:
		return i.HasRole(config.RoleLiveness)
	case ScopeReadiness:
		return i.HasRole(config.RoleReadiness)
	case ScopeStartup:
		return i.HasRole(config.RoleStartup)
	default:
		return false
	}
}

// Passes reports whether a check in status st passes this scope: healthy
// passes; unhealthy fails; starting passes liveness only (the kubelet's
// initial liveness result is success, its initial readiness failure).
func (sc Scope) Passes(st Status) bool {
	switch st {
	case StatusHealthy:
		return true
	case StatusStarting:
		return sc == ScopeLiveness
	default:
		return false
	}
}

// Entry is one check's line in a Verdict.
type Entry struct {
	// Check is the check (points into the snapshot).
	Check *Check
	// OK is whether it passes the scope.
	OK bool
	// Excluded is set when ?exclude named it; it then does not count.
	Excluded bool
}

// Verdict is an endpoint's answer.
type Verdict struct {
	// OK is whether the endpoint passes: every covered, non-excluded check
	// passes and (for readiness) the process is not shutting down.
	OK bool
	// ShuttingDown is set on a readiness verdict during shutdown.
	ShuttingDown bool
	// Entries list the covered checks in config order.
	Entries []Entry
}

// Plain reports the verdict of scope sc with nothing excluded, precomputed
// when the snapshot was published (the serving fast path).
func (s *Snapshot) Plain(sc Scope) bool {
	if sc <= scopeInvalid || sc >= scopeCount {
		return false
	}
	return s.plain[sc]
}

// Evaluate computes the verdict of scope sc, leaving out the checks named in
// exclude (kube-apiserver's ?exclude=).
func (s *Snapshot) Evaluate(sc Scope, exclude map[string]bool) Verdict {
	v := Verdict{OK: true}
	if sc == ScopeReadiness && s.ShuttingDown {
		v.OK, v.ShuttingDown = false, true
	}
	for c := range s.Checks() {
		if !sc.Covers(&c.Spec) {
			continue
		}
		e := Entry{Check: c, OK: sc.Passes(c.State.Status), Excluded: exclude[c.Name]}
		if !e.OK && !e.Excluded {
			v.OK = false
		}
		v.Entries = append(v.Entries, e)
	}
	return v
}

// Package probe is the shared vocabulary of healthbridge's probes: the Prober
// interface every probe kind implements, the per-run Result and its Outcome.
//
// It does no I/O and imports no probe kind. Each kind lives in its own
// sub-package (internal/probe/exec, tcp, http, …) and exports one Kind
// descriptor; internal/probe/kinds lists them. Periods, thresholds and
// states are not a probe's business: see internal/scheduler and
// internal/state.
package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Outcome is the verdict of one probe run, before any threshold is applied.
// The zero value is OutcomeUnknown.
type Outcome int

const (
	// OutcomeUnknown means the probe could not be attempted (bad spec found at
	// run time, missing binary, a panic). As the kubelet does, it counts as a
	// failure toward thresholds, but it is shown distinctly.
	OutcomeUnknown Outcome = iota
	// OutcomeSuccess means the target answered healthy.
	OutcomeSuccess
	// OutcomeFailure means the target said no: refused, timed out, bad status,
	// non-zero exit.
	OutcomeFailure
	// OutcomeWarning is a success with a concern (a TTL check reported "warn").
	// It counts as a success toward thresholds.
	OutcomeWarning
	// OutcomeStarting means the target says it is working but not ready yet:
	// Docker's original exit code 2 rule (the first HEALTHCHECK design). While the check is still
	// starting it is not counted; afterwards it counts as a failure.
	OutcomeStarting

	// NumOutcomes is the number of Outcome values, for arrays indexed by
	// Outcome.
	NumOutcomes = iota
)

// String returns the lowercase name of o: unknown, success, failure, warning
// or starting.
func (o Outcome) String() string {
	switch o {
	case OutcomeUnknown:
		return "unknown"
	case OutcomeSuccess:
		return "success"
	case OutcomeFailure:
		return "failure"
	case OutcomeWarning:
		return "warning"
	case OutcomeStarting:
		return "starting"
	default:
		return fmt.Sprintf("outcome(%d)", int(o))
	}
}

// MarshalText encodes o as its String form, so JSON shows names, not numbers.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Passing reports whether o counts as a success toward thresholds.
func (o Outcome) Passing() bool { return o == OutcomeSuccess || o == OutcomeWarning }

// Result is what one probe run found. Probers fill Outcome, Output and the
// kind-specific codes; the scheduler fills Start and End when a prober leaves
// them zero.
type Result struct {
	// Outcome is the verdict of this run.
	Outcome Outcome
	// Output is a short, human-readable account: the command's combined
	// output (at most MaxOutput bytes, "..." marking truncation), the HTTP
	// body, or why the connection failed.
	Output string
	// Err is set, for OutcomeUnknown, to why the probe could not be attempted.
	Err error
	// Start and End bound the run (wall clock).
	Start, End time.Time
	// ExitCode is the exit status of an exec probe; -1 when the command was
	// killed or never ran, 0 for other kinds.
	ExitCode int
	// HTTPStatus is the response status of an httpGet probe, 0 for other kinds.
	HTTPStatus int
	// CertExpiry is the earliest NotAfter among the certificates the
	// server presented over TLS (blackbox_exporter's
	// probe_ssl_earliest_cert_expiry); zero when the run spoke no TLS or
	// got no certificate.
	CertExpiry time.Time
	// Detail is extra text for debug logs and the one-shot client's -v
	// only; it is never stored or served. An HTTP failure's response body
	// goes here, not in Output, as the kubelet keeps it out of events
	// (kubernetes#99425).
	Detail string
}

// Duration is End minus Start.
func (r Result) Duration() time.Duration { return r.End.Sub(r.Start) }

// Success returns a Result with OutcomeSuccess and the given output.
func Success(output string) Result { return Result{Outcome: OutcomeSuccess, Output: output} }

// Failure returns a Result with OutcomeFailure and a formatted output.
func Failure(format string, args ...any) Result {
	return Result{Outcome: OutcomeFailure, Output: fmt.Sprintf(format, args...)}
}

// Unknown returns a Result with OutcomeUnknown for a probe that could not be
// attempted; its Output is err's text.
func Unknown(err error) Result {
	return Result{Outcome: OutcomeUnknown, Output: err.Error(), Err: err}
}

// Prober runs one kind of probe against one target.
//
// Probe must return promptly once ctx is done (the scheduler puts the check's
// timeout on ctx; it is the only timeout) and must be safe to call again after
// it returns. The scheduler never calls Probe concurrently for the same check.
type Prober interface {
	Probe(ctx context.Context) Result
}

// A Prober that holds resources (a watch, a connection) also implements
// io.Closer; the sidecar closes it after the scheduler has stopped.

// Deps are what a probe constructor may need beyond its own spec. The zero
// value is usable.
type Deps struct {
	// UserAgent is sent by HTTP and gRPC probes that do not set one;
	// default UserAgent().
	UserAgent string
	// Kubeconfig is --kubeconfig for kubernetesPod checks; empty means
	// client-go's usual rules ($KUBECONFIG, ~/.kube/config, in-cluster).
	Kubeconfig string
	// ChildPid, when not nil, returns the pid of the command that
	// `healthbridge run` supervises, or 0 while none runs. A rundir check
	// then checks its pid against that child instead of trusting the pid
	// file alone.
	ChildPid func() int
}

// Version is healthbridge's version, without a leading "v", shown by
// `healthbridge version` and sent in UserAgent: "0.1.0" in a build from a
// checkout, the module's version in a build by `go install
// …@VERSION` (from the build information), or what -ldflags
// "-X github.com/healthbridge/healthbridge/internal/probe.Version=…" sets.
var Version = "0.1.0"

// Commit is the commit a release was built from, set with
// "-X github.com/healthbridge/healthbridge/internal/probe.Commit=…" by
// builds that do not record version control (deploy/release.sh; go build
// -buildvcs=false). Empty: BuildInfo reads vcs.revision from the build.
var Commit = ""

func init() {
	if bi, ok := debug.ReadBuildInfo(); ok && Version == "0.1.0" {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			Version = strings.TrimPrefix(v, "v")
		}
	}
}

// BuildInfo describes the build in one line: the version, the commit (Commit,
// or the one the build recorded, "+dirty" with uncommitted changes) and the Go
// version, e.g. "0.1.0 (commit 595f436, go1.26.8)".
func BuildInfo() string {
	goVersion, commit := runtime.Version(), Commit
	bi, ok := debug.ReadBuildInfo()
	if ok {
		goVersion = bi.GoVersion
	}
	if ok && commit == "" {
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value[:min(len(s.Value), 12)]
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if commit != "" && dirty {
			commit += "+dirty"
		}
	}
	if commit == "" {
		return Version + " (" + goVersion + ")"
	}
	return Version + " (commit " + commit + ", " + goVersion + ")"
}

// UserAgent is what HTTP and gRPC probes send by default:
// "healthbridge/<Version>" (as the kubelet sends "kube-probe/1.36"), so
// probe traffic can be told apart and counted by this string.
func UserAgent() string { return "healthbridge/" + Version }

// MaxOutput is how many bytes of a probe's output are stored: 4096, as
// Docker's health monitor (moby daemon/health.go).
const MaxOutput = 4096

// Truncated is appended to output cut at MaxOutput.
const Truncated = "..."

// EarliestExpiry is the earliest NotAfter among the certificates of a TLS
// connection's peer; zero without a connection or certificate.
func EarliestExpiry(cs *tls.ConnectionState) time.Time {
	var t time.Time
	if cs == nil {
		return t
	}
	for _, c := range cs.PeerCertificates {
		if t.IsZero() || c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// WarnIfExpiring turns a passing result whose CertExpiry is less than
// minValidity after now into a warning (OutcomeWarning: still passing)
// that says when the certificate expires; 0 or no certificate: nothing.
func (r *Result) WarnIfExpiring(minValidity time.Duration, now time.Time) {
	if minValidity <= 0 || r.CertExpiry.IsZero() || !r.Outcome.Passing() {
		return
	}
	left := r.CertExpiry.Sub(now)
	if left >= minValidity {
		return
	}
	when := fmt.Sprintf("expires in %v", left.Round(time.Second))
	if left <= 0 {
		when = fmt.Sprintf("expired %v ago", (-left).Round(time.Second))
	}
	r.Outcome = OutcomeWarning
	msg := fmt.Sprintf("the server's certificate %s (%s), within tls.minValidity %v", when, r.CertExpiry.UTC().Format(time.RFC3339), minValidity)
	if r.Output != "" {
		msg += "; " + r.Output
	}
	r.Output = msg
}

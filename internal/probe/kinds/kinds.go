// Package kinds is the one list of probe kinds. Every entry point goes
// through it: the config's rules (Rules, Load, Parse), the sidecar's
// wiring (Of, New, push kinds), the one-shot client (ForWord).
//
// Adding a kind means: its package under internal/probe/<kind> exporting a
// probe.Kind, its field in config.Check, and one line in List (a heavy
// kind, one that links a large library, goes in <kind>_kind.go with a
// probe.Absent twin in <kind>_absent.go, so that `-tags lean` leaves it
// out). A test
// checks that every probe field of config.Check has exactly one entry.
package kinds

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/dns"
	"github.com/healthbridge/healthbridge/internal/probe/exec"
	"github.com/healthbridge/healthbridge/internal/probe/file"
	"github.com/healthbridge/healthbridge/internal/probe/http"
	"github.com/healthbridge/healthbridge/internal/probe/rundir"
	"github.com/healthbridge/healthbridge/internal/probe/tcp"
	"github.com/healthbridge/healthbridge/internal/probe/ttl"
	"github.com/healthbridge/healthbridge/internal/probe/udp"
	"github.com/healthbridge/healthbridge/internal/state"
)

// List is every probe kind, in the order messages name them. The heavy
// ones (grpcKind, kubeKind) are probe.Absent descriptors in a lean build
// (grpc_kind.go and grpc_absent.go, kube_kind.go and kube_absent.go).
var List = []*probe.Kind{
	&exec.Kind,
	&http.Kind,
	&tcp.Kind,
	grpcKind,
	kubeKind,
	&rundir.Kind,
	&ttl.Kind,
	&dns.Kind,
	&udp.Kind,
	&file.Kind,
}

// Lean reports whether a kind was left out of this binary (built with
// -tags lean, nogrpc or nokube).
var Lean bool

// Of returns the kind of a validated check (exactly one kind field set),
// or nil.
func Of(c *config.Check) *probe.Kind {
	var found *probe.Kind
	for _, k := range List {
		if k.Has(c) {
			if found != nil {
				return nil
			}
			found = k
		}
	}
	return found
}

// New builds the sidecar's prober for a validated check of a kind that is
// not a push kind.
func New(c *config.Check, d probe.Deps) (probe.Prober, error) {
	k := Of(c)
	if k == nil {
		return nil, fmt.Errorf("no single probe kind")
	}
	return k.New(c, d)
}

// ForWord returns the kind `healthbridge probe <word>` selects: the word
// equals one of the kind's words, or starts with one ending in "://".
func ForWord(word string) *probe.Kind {
	for _, k := range List {
		if k.OneShot == nil {
			continue
		}
		for _, w := range k.OneShot.Words {
			if word == w || (strings.HasSuffix(w, "://") && strings.HasPrefix(word, w)) {
				return k
			}
		}
	}
	return nil
}

// Rules are the kinds' config rules, for config.Load and friends.
var Rules config.Rules = rules{}

type rules struct{}

func (rules) Names() []string {
	var out []string
	for _, k := range List {
		out = append(out, k.Name)
	}
	return out
}

func (rules) Set(c *config.Check) []string {
	var out []string
	for _, k := range List {
		if k.Has(c) {
			out = append(out, k.Name)
		}
	}
	return out
}

func (rules) Defaults(c *config.Check) {
	for _, k := range List {
		if k.Has(c) && k.Defaults != nil {
			k.Defaults(c)
		}
	}
}

func (rules) Validate(c *config.Check, path string) []error {
	var errs []error
	for _, k := range List {
		if k.Has(c) && k.Validate != nil {
			errs = append(errs, k.Validate(c, path)...)
		}
	}
	return errs
}

func (rules) Push(c *config.Check) bool {
	k := Of(c)
	return k != nil && k.Push != nil
}

// Load reads, decodes, defaults and validates a config file with every
// kind's rules (config.Load with Rules).
func Load(path string) (*config.Config, error) { return config.Load(path, Rules) }

// Parse is config.Parse with every kind's rules.
func Parse(data []byte) (*config.Config, error) { return config.Parse(data, Rules) }

// Spec derives a check's one spec from its config and kind: the only
// place config fields become the store's and the scheduler's view. The
// phase is a random part of the period, fixed for the run.
func Spec(c *config.Check, k *probe.Kind) state.Spec {
	return state.Spec{
		Name: c.Name, Kind: k.Name, ExitCodes: k.ExitCodes, Roles: c.Roles,
		Policy: state.Policy{
			SuccessThreshold: int(c.SuccessThreshold),
			FailureThreshold: int(c.FailureThreshold),
			StartPeriod:      c.StartPeriod(),
		},
		Timing: state.Timing{
			InitialDelay:  c.InitialDelay(),
			Period:        c.Period(),
			StartInterval: c.StartInterval(),
			Timeout:       c.Timeout(),
			Phase:         time.Duration(rand.Int64N(int64(c.Period()))),
		},
	}
}

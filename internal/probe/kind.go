package probe

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
)

// Kind describes one probe kind: everything the rest of healthbridge needs
// to know about it. Each kind package exports exactly one (exec.Kind,
// tcp.Kind, …) and internal/probe/kinds lists them; the config, the
// sidecar's wiring and the one-shot client go through that list and know
// no kind by name. The pattern is blackbox_exporter's single table of
// probers, with the config rules the table needs beside each entry.
type Kind struct {
	// Name is the kind's config field ("exec", "httpGet", …), also its name
	// in logs, metrics and JSON.
	Name string
	// Has reports whether the check's config holds this kind's field.
	Has func(c *config.Check) bool
	// Defaults, when not nil, fills the unset fields of the kind's own
	// block, and may set check-level fields the kind has its own default
	// for (ttl: periodSeconds 1). It runs before the generic defaults.
	Defaults func(c *config.Check)
	// Validate, when not nil, returns every problem of the kind's block,
	// each as "<path>.<field>: message" (path is "checks[2]"). It runs on a
	// defaulted check.
	Validate func(c *config.Check, path string) []error
	// New builds the sidecar's prober for a validated check. Files the
	// kind needs are read now, so a bad one is a start-up error; errors
	// name the field relative to the check ("exec.command[0]: ...").
	New func(c *config.Check, d Deps) (Prober, error)
	// ExitCodes says that the kind's results carry a process exit code
	// (shown as exitCode in JSON).
	ExitCodes bool
	// OneShot, when not nil, makes the kind available as
	// `healthbridge probe <word> …`.
	OneShot *OneShot
	// Push, when not nil, makes the kind a push kind: its checks are
	// judged on what applications report to the admin listener.
	Push func(checks []*config.Check, runNow func(check string)) PushKind
}

// OneShot is how `healthbridge probe` builds a kind's prober from a
// command line.
type OneShot struct {
	// Words select the kind: the first argument equals one ("tcp"), or, for
	// a word ending in "://", starts with it ("http://": the argument is a
	// URL).
	Words []string
	// Usage is the kind's usage line, after "healthbridge probe ".
	Usage string
	// Flags registers the kind's own flags on fs (the common --timeout and
	// -v are already there) and returns the builder, called after parsing.
	// The builder returns the prober and a short description of the target
	// for messages; its errors are usage errors.
	Flags func(fs *pflag.FlagSet) func(a Args) (Prober, string, error)
	// Schemes are the URL schemes that select the kind as a target of
	// `healthbridge wait` ("tcp" for tcp://HOST:PORT); none: not a wait
	// target.
	Schemes []string
	// Target turns such a URL into the kind's positional arguments, as
	// they would follow `healthbridge probe` (tcp://db:5432 → "tcp",
	// "db:5432"); the URL's query parameters become the kind's flags
	// (?unit=web → --unit=web) without the kind's help. Its errors name
	// what is wrong with the URL.
	Target func(u *url.URL) ([]string, error)
}

// HostTarget is the Target of a kind whose one positional argument after
// its word is HOST:PORT (tcp://db:5432 → word "db:5432"): the URL must
// have a port and no path.
func HostTarget(word string) func(u *url.URL) ([]string, error) {
	return func(u *url.URL) ([]string, error) {
		if u.Port() == "" || u.Hostname() == "" {
			return nil, fmt.Errorf("want %s://HOST:PORT", u.Scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("%s://HOST:PORT takes no path, got %q", u.Scheme, u.Path)
		}
		return []string{word, u.Host}, nil
	}
}

// Args are what `healthbridge probe` hands a kind's one-shot builder.
type Args struct {
	// Pos are the positional arguments; the first is the selecting word or
	// URL.
	Pos []string
	// Command is what followed "--", nil when there was none.
	Command []string
	// Timeout bounds the probe (the context carries it; this is for
	// messages).
	Timeout time.Duration
	// Deps are the same as the sidecar's.
	Deps Deps
}

// PushKind is a push kind set up for one sidecar's checks of that kind.
type PushKind struct {
	// Handler is mounted on the admin listener at each of Patterns (Go
	// 1.22 http.ServeMux patterns with a method and wildcards, such as
	// "POST /checks/{name}/{verb}": the mux answers 405 with Allow for
	// other methods, and the handler reads the wildcards with
	// Request.PathValue). A subtree pattern ("/checks/") is not allowed:
	// the mux would redirect "/checks" to it, and no listener redirects.
	Patterns []string
	Handler  http.Handler
	// New replaces Kind.New for these checks: their probers read what the
	// handler received.
	New func(c *config.Check, d Deps) (Prober, error)
}

// Register mounts the handler at each of its patterns on mux.
func (pk PushKind) Register(mux *http.ServeMux) {
	for _, p := range pk.Patterns {
		mux.Handle(p, pk.Handler)
	}
}

// LeanTag is the build tag that leaves the heavy kinds out of a binary
// (kubernetesPod, which links client-go; grpc, which links grpc-go), the
// way Telegraf's and CoreDNS's custom builds leave out plugins.
const LeanTag = "lean"

// Absent is the descriptor of a kind left out of this binary by the build
// tag tag: a config or a `healthbridge probe` command line that uses it
// gets an error saying so and naming the build that has it, instead of an
// "unknown field". has is the kind's Has; words its one-shot words.
func Absent(name, tag string, has func(c *config.Check) bool, words ...string) *Kind {
	msg := fmt.Sprintf("the %s kind is not in this binary (built with -tags %s); the full build (image healthbridge, binary healthbridge built without -tags %s) has it", name, tag, tag)
	k := &Kind{
		Name: name,
		Has:  has,
		Validate: func(_ *config.Check, path string) []error {
			return []error{config.Errorf(path+"."+name, "%s", msg)}
		},
		New: func(*config.Check, Deps) (Prober, error) { return nil, config.Errorf(name, "%s", msg) },
	}
	if len(words) > 0 {
		k.OneShot = &OneShot{
			Words: words,
			Usage: words[0] + " … (not in this build)",
			Flags: func(fs *pflag.FlagSet) func(Args) (Prober, string, error) {
				fs.ParseErrorsAllowlist.UnknownFlags = true
				return func(Args) (Prober, string, error) { return nil, "", errors.New(msg) }
			},
		}
	}
	return k
}

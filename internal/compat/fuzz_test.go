package compat

import (
	"io"
	"strings"
	"testing"

	"github.com/healthbridge/healthbridge/internal/probe/kinds"
)

// FuzzExechealthz: any command line (arguments separated by NUL here) is
// refused with an error naming a flag or argument, or accepted; an
// accepted one always makes a valid healthbridge config, one check per
// -url with a unique name.
func FuzzExechealthz(f *testing.F) {
	for _, args := range []string{"-cmd\x00true", "-url=/a\x00-cmd=true\x00-url=/b\x00-cmd=false", "-cmd\x00ls /x\x00-period\x00500ms\x00-latency\x0030s",
		"-port\x00-1\x00-cmd\x00x", "-url\x00a\x00-cmd\x00x", "-url\x00/\x00-cmd\x00x\x00-url\x00//\x00-cmd\x00y", "-h", "-cmd\x00 ", "-period=0s"} {
		f.Add(args)
	}
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		e, err := ParseExechealthz(args, io.Discard, nil)
		if err != nil {
			if e != nil {
				t.Fatal("a result with an error")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "-") && !strings.HasPrefix(msg, "unexpected argument") && !strings.Contains(msg, "flag") {
				t.Fatalf("%q: the error names no flag or argument: %v", args, err)
			}
			return
		}
		c := e.Config()
		if err := c.Validate(kinds.Rules); err != nil {
			t.Fatalf("%q accepted, but its config is invalid: %v", args, err)
		}
		names := map[string]bool{}
		for _, ch := range c.Checks {
			if names[ch.Name] {
				t.Fatalf("%q: two checks named %q", args, ch.Name)
			}
			names[ch.Name] = true
		}
		if len(c.Checks) != len(e.Pairs) {
			t.Fatalf("%q: %d checks for %d -url/-cmd pairs", args, len(c.Checks), len(e.Pairs))
		}
	})
}

// FuzzHTTPHealthcheck: any values of http-healthcheck-sidecar's
// variables are refused with an error naming the variable, or make a
// valid config.
func FuzzHTTPHealthcheck(f *testing.F) {
	f.Add("app", "", "")
	f.Add("", "my-pod-0", "TRUE")
	f.Add("a b", "x/y", "yes")
	f.Fuzz(func(t *testing.T, container, pod, override string) {
		env := map[string]string{EnvTargetContainer: container, EnvPodOverride: pod, EnvStateOverride: override}
		lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		h, err := ParseHTTPHealthcheck(lookup)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "HTTP_HEALTHCHECK_SIDECAR_") {
				t.Fatalf("the error names no variable: %v", err)
			}
			return
		}
		if (override != "") != (h.Override != nil) {
			t.Fatalf("override %q read as %v", override, h.Override)
		}
		if kinds.Lean {
			return // the lean build has no kubernetesPod kind, and says so at start-up
		}
		if err := h.Config(HTTPHealthcheckListen).Validate(kinds.Rules); err != nil {
			t.Fatalf("container %q pod %q accepted, but the config is invalid: %v", container, pod, err)
		}
	})
}

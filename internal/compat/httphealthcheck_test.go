package compat

import (
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestHTTPHealthcheckEnvironment(t *testing.T) {
	for _, tt := range []struct {
		name     string
		env      map[string]string
		mode     bool
		override string // "", "true", "false" or "error"
	}{
		{"nothing set", nil, false, ""},
		{"set but empty is unset, as the original's os.Getenv", map[string]string{EnvTargetContainer: "", EnvStateOverride: ""}, false, ""},
		{"container", map[string]string{EnvTargetContainer: "App"}, true, ""},
		{"TRUE", map[string]string{EnvStateOverride: "TRUE"}, true, "true"},
		{"True", map[string]string{EnvStateOverride: "True"}, true, "true"},
		{"false", map[string]string{EnvStateOverride: "false"}, true, "false"},
		{"FALSE", map[string]string{EnvStateOverride: "FALSE"}, true, "false"},
		{"neither", map[string]string{EnvStateOverride: "yes"}, true, "error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsHTTPHealthcheck(env(tt.env)); got != tt.mode {
				t.Fatalf("mode %v, want %v", got, tt.mode)
			}
			h, err := ParseHTTPHealthcheck(env(tt.env))
			switch {
			case tt.override == "error":
				if err == nil || !strings.Contains(err.Error(), EnvStateOverride) {
					t.Fatalf("want an error naming %s, got %v", EnvStateOverride, err)
				}
			case err != nil:
				t.Fatal(err)
			case tt.override == "" && h.Override != nil:
				t.Fatalf("override %v, want none", *h.Override)
			case tt.override != "" && (h.Override == nil || *h.Override != (tt.override == "true")):
				t.Fatalf("override %v, want %s", h.Override, tt.override)
			}
		})
	}
}

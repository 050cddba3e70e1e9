package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpNamesThisProgram: healthbridge-probe's help names its own
// commands (probing is the command itself, "healthbridge-probe tcp …"),
// including check and healthcheck, and every usage error does too.
func TestHelpNamesThisProgram(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || errb.Len() != 0 {
		t.Fatalf("--help: exit %d, stderr %q", code, errb.String())
	}
	help := out.String()
	for _, want := range []string{"healthbridge-probe tcp HOST:PORT", "healthbridge-probe http(s)://", "healthbridge-probe check --config",
		"healthbridge-probe healthcheck", "healthbridge-probe version"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "healthbridge probe ") {
		t.Errorf("help names the full binary's subcommand:\n%s", help)
	}
	for _, args := range [][]string{{"tcp"}, {"check"}, {"healthcheck", "--bogus"}, {"nonsense"}} {
		out.Reset()
		errb.Reset()
		if code := run(args, &out, &errb); code != 2 || !strings.HasPrefix(errb.String(), "healthbridge-probe") ||
			strings.Contains(errb.String(), "healthbridge probe ") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

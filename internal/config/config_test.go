// The config's tests run with every kind's rules (kinds.Rules), as the
// binary does: an external test package, since the kinds import config.
package config_test

import (
	"flag"
	"fmt"
	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden .err files")

// TestInvalidGolden pins the exact error text of every invalid config in
// testdata/invalid: every problem, one per line, with its field path.
func TestInvalidGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if body, _ := os.ReadFile(f); kinds.Lean && (strings.Contains(string(body), "grpc") || strings.Contains(string(body), "kubernetesPod")) {
				t.Skip("names a kind the lean build leaves out (TestLeanBuildNamesTheFullBuild covers that)")
			}
			cfg, err := kinds.Load(f)
			if err == nil {
				t.Fatalf("loaded without error: %+v", cfg)
			}
			if cfg != nil {
				t.Fatal("a config was returned with an error")
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				_ = os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644)
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Fatalf("error text:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestPastedKubernetesProbe(t *testing.T) {
	cfg, err := kinds.Load("testdata/valid/pasted-readiness.yaml")
	if err != nil {
		t.Fatal(err)
	}
	web, tcp, py := cfg.Checks[0], cfg.Checks[1], cfg.Checks[2]
	if web.HTTPGet == nil || web.HTTPGet.Port.IntValue() != 5000 || web.TimeoutSeconds != 2 || web.InitialDelaySeconds != 3 ||
		!web.HasRole(config.RoleReadiness) || web.HasRole(config.RoleLiveness) {
		t.Fatalf("web: %+v", web)
	}
	// Defaults: Kubernetes' for the probe, Docker's start interval, both roles.
	if tcp.PeriodSeconds != 10 || tcp.TimeoutSeconds != 1 || tcp.SuccessThreshold != 1 || tcp.FailureThreshold != 3 ||
		tcp.StartIntervalSeconds != 5 || !tcp.HasRole(config.RoleLiveness) || !tcp.HasRole(config.RoleReadiness) || tcp.TCPSocket == nil {
		t.Fatalf("tcp defaults: %+v", tcp)
	}
	if py.Exec == nil || py.StartingExitCode != 2 || py.StartPeriod().Seconds() != 30 || py.Exec.Command[2] != "ps -ef | grep python" {
		t.Fatalf("python: %+v", py)
	}
	if cfg.Listen != "127.0.0.1:0" || cfg.FailureStatusCode != 503 {
		t.Fatalf("top level: %+v", cfg)
	}
}

func TestStartIntervalCappedAtPeriod(t *testing.T) {
	cfg, err := kinds.Parse([]byte("checks: [{name: a, periodSeconds: 2, tcpSocket: {port: 1}}]"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Checks[0].StartIntervalSeconds; got != 2 {
		t.Fatalf("start interval %d, want the 2s period", got)
	}
}

func TestJSONConfigAccepted(t *testing.T) {
	if _, err := kinds.Parse([]byte(`{"checks":[{"name":"a","exec":{"command":["true"]}}]}`)); err != nil {
		t.Fatal(err)
	}
	// Python's json.dumps writes non-BMP characters as surrogate pairs,
	// which YAML parsers refuse; a JSON file is read as JSON.
	c, err := kinds.Parse([]byte(`{"checks":[{"name":"a","exec":{"command":["echo","\ud83d\ude00 caf\u00e9"]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Checks[0].Exec.Command[1]; got != "\U0001F600 café" {
		t.Fatalf("decoded %q", got)
	}
}

func TestAdminListenMustBeLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8081": true, "127.1.2.3:0": true, "[::1]:8081": true, "localhost:8081": true,
		":8081": false, "0.0.0.0:8081": false, "[::]:8081": false, "10.0.0.5:8081": false, "example.com:8081": false,
	} {
		body := `{"adminListen":"` + addr + `","checks":[{"name":"beat","ttl":{"seconds":5}}]}`
		_, err := kinds.Parse([]byte(body))
		if (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", addr, err, ok)
		}
		if !ok && (err == nil || !strings.HasPrefix(err.Error(), "adminListen: ")) {
			t.Errorf("%s: error must name adminListen: %v", addr, err)
		}
		// Said explicitly, any address is accepted.
		body = `{"adminListen":"` + addr + `","allowRemoteAdmin":true,"checks":[{"name":"beat","ttl":{"seconds":5}}]}`
		if _, err := kinds.Parse([]byte(body)); err != nil {
			t.Errorf("%s with allowRemoteAdmin: %v", addr, err)
		}
	}
}

// TestTruncatedJSONSaysWhere: a 10 MB JSON config cut short is refused
// with the line, column and byte where parsing stopped.
func TestTruncatedJSONSaysWhere(t *testing.T) {
	var b strings.Builder
	b.WriteString("{\n  \"checks\": [\n")
	for i := 0; b.Len() < 10<<20; i++ {
		fmt.Fprintf(&b, "    {\"name\": \"c%d\", \"tcpSocket\": {\"port\": 80}},\n", i)
	}
	full := b.String()
	cut := full[:len(full)-20] // mid-object
	lines := strings.Count(cut, "\n") + 1
	_, err := config.Parse([]byte(cut), kinds.Rules)
	want := fmt.Sprintf("config: line %d, column %d (offset %d): unexpected end of JSON input", lines, len(cut)-strings.LastIndex(cut, "\n"), len(cut))
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// A syntax error mid-file, likewise.
	_, err = config.Parse([]byte("{\"checks\": [\n  {\"name\": \"a\",, \"tcpSocket\": {\"port\": 80}}\n]}"), kinds.Rules)
	if err == nil || !strings.HasPrefix(err.Error(), "config: line 2, column 16 (offset 28): invalid character ','") {
		t.Fatalf("got %v", err)
	}
}

// TestStrictErrorPathsAreQuoted: a duplicate or unknown key in a JSON
// file is named by a path in the same form as every other error, a key
// that is not a plain name quoted (sigs.k8s.io/json's own form, keys
// joined by ".", would read "000[0].0000").
func TestStrictErrorPathsAreQuoted(t *testing.T) {
	for in, want := range map[string]string{
		`{"000":[{"0000":1,"0000":2}]}`:                                     `config["000"][0]["0000"]: duplicate field`,
		`{"checks":[{"name":"a","name":"b","tcpSocket":{"port":80}}]}`:      `checks[0].name: duplicate field`,
		`{"checks":[{"name":"a","tcpSocket":{"port":80,"a b":1,"a b":2}}]}`: `checks[0].tcpSocket["a b"]: duplicate field`,
		`{"":1,"":2}`:       `config[""]: duplicate field`,
		`{"x":{"":1,"":2}}`: `x[""]: duplicate field`,
	} {
		_, err := kinds.Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want a line %q", in, err, want)
		}
	}
}

// TestValidConfigsLoad: every file in testdata/valid (also FuzzParse's
// seeds) loads without an error.
func TestValidConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	if len(files) < 2 {
		t.Fatalf("only %v", files)
	}
	for _, f := range files {
		if _, err := kinds.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
)

// errorLine is one line of a refused config's error: a field path (or
// "config" for the file as a whole), a colon, and what is wrong.
var errorLine = regexp.MustCompile(`^(config|[A-Za-z][A-Za-z0-9_-]*)(\.[A-Za-z][A-Za-z0-9_-]*|\[[0-9]+\]|\["([^"\\]|\\.)*"\])*: \S`)

// FuzzParse feeds config.Parse any bytes, as YAML or JSON. A refusal
// names a path on every line; an accepted config round-trips: written back
// as JSON and parsed again it is accepted and writes back the same.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"testdata/valid/*.yaml", "testdata/invalid/*.yaml", "../../examples/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`{"checks": [{"name": "a", "tcpSocket": {"port": 80}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := kinds.Parse(data)
		if err != nil {
			if cfg != nil {
				t.Fatal("a config was returned with an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !errorLine.MatchString(line) {
					t.Fatalf("an error line without a path: %q\nin:\n%s", line, err)
				}
			}
			return
		}
		first, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("an accepted config does not marshal: %v", err)
		}
		again, err := config.Parse(first, kinds.Rules)
		if err != nil {
			t.Fatalf("an accepted config, written back, is refused: %v\n%s", err, first)
		}
		second, _ := json.Marshal(again)
		if !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the config:\n%s\n%s", first, second)
		}
	})
}

package kinds

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/healthbridge/healthbridge/internal/config"
)

// unionFields lists the JSON names of config.Check's probe fields: every
// field, own or promoted from the embedded config.Probe, that holds a
// pointer to a struct.
func unionFields() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[config.Check]()) {
		if f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// TestListCoversEveryConfigKind: every probe field of the config has
// exactly one kind in List, named after it, and List has nothing else.
func TestListCoversEveryConfigKind(t *testing.T) {
	fields := unionFields()
	if len(fields) < 7 {
		t.Fatalf("found only %v: the test cannot see the config's probe fields", fields)
	}
	for _, f := range fields {
		var c config.Check
		if err := json.Unmarshal([]byte(`{"`+f+`": {}}`), &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var names []string
		for _, k := range List {
			if k.Has(&c) {
				names = append(names, k.Name)
			}
		}
		if len(names) != 1 || names[0] != f {
			t.Errorf("config field %q: kinds %v, want exactly [%s]", f, names, f)
		}
	}
	if len(List) != len(fields) {
		t.Errorf("List has %d kinds, the config %d probe fields (%v)", len(List), len(fields), fields)
	}
	for _, k := range List {
		if k.Name == "" || k.Has == nil || k.New == nil {
			t.Errorf("kind %q lacks a name, Has or New", k.Name)
		}
		if k.OneShot != nil && (len(k.OneShot.Words) == 0 || k.OneShot.Flags == nil || k.OneShot.Usage == "") {
			t.Errorf("kind %q: incomplete OneShot", k.Name)
		}
	}
}

func TestForWord(t *testing.T) {
	for word, want := range map[string]string{
		"tcp": "tcpSocket", "http://127.0.0.1/": "httpGet", "https://x/": "httpGet", "grpc": "grpc",
		"rundir": "rundir", "exec": "exec", "ttl": "", "httpx": "", "": "",
	} {
		got := ""
		if k := ForWord(word); k != nil {
			got = k.Name
		}
		if got != want {
			t.Errorf("%q: %q, want %q", word, got, want)
		}
	}
}

// TestLeanBuildNamesTheFullBuild: with -tags lean, a config that uses a
// kind the lean build leaves out is refused at load, naming the field and
// the build that has it; in the full build the same config loads.
func TestLeanBuildNamesTheFullBuild(t *testing.T) {
	for _, tc := range []struct{ field, body string }{
		{"grpc", "grpc: {port: 9090}"},
		{"kubernetesPod", "kubernetesPod: {pod: web, namespace: default}"},
	} {
		_, err := Parse([]byte("checks:\n  - name: x\n    " + tc.body + "\n"))
		if Lean {
			want := "checks[0]." + tc.field + ": the " + tc.field + " kind is not in this binary (built with -tags lean)"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s in the lean build: %v, want %q", tc.field, err, want)
			}
		} else if err != nil {
			t.Errorf("%s in the full build: %v", tc.field, err)
		}
	}
}

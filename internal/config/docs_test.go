package config_test

import (
	"encoding"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/healthbridge/healthbridge/internal/config"
)

// TestEveryFieldDocumented: every field of the config file, at every
// depth, has a row in docs/configuration.md's reference tables, spelled
// as its path (`checks[].httpGet.tls.caFile`). A field added to the
// structs and not to the manual fails here.
func TestEveryFieldDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	fieldPaths(reflect.TypeOf(config.Config{}), "", &paths)
	if len(paths) < 50 {
		t.Fatalf("only %d fields found: %v", len(paths), paths)
	}
	for _, p := range paths {
		if !strings.Contains(string(doc), "| `"+p+"` |") {
			t.Errorf("docs/configuration.md has no row for `%s`", p)
		}
	}
}

var (
	marshaler     = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// fieldPaths appends the JSON path of every field of struct type t under
// prefix: "a.b" for a nested object, "a[].b" inside a list. Inline
// (embedded) structs add their fields at the same level; a type that
// writes its own JSON or text (a port, a duration) is a leaf.
func fieldPaths(t reflect.Type, prefix string, out *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if f.Anonymous && name == "" {
			fieldPaths(f.Type, prefix, out)
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		path := prefix + name
		*out = append(*out, path)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice {
			path += "[]"
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(marshaler) && !ft.Implements(marshaler) && !ft.Implements(textMarshaler) {
			fieldPaths(ft, path+".", out)
		}
	}
}

package config

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Load reads, strictly decodes, defaults and validates the YAML (or JSON)
// file at path. The error lists every problem found, one per line, each
// prefixed with its field path (see Parse).
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse strictly decodes YAML or JSON, applies defaults and validates.
//
// Strict means: duplicate keys, unknown fields and values of the wrong type
// are errors, each reported with its path ("checks[1].tcpSocket.prot: unknown
// field"). The returned error joins every error found (errors.Join), so its
// text is one problem per line; the config is nil whenever err is not.
func Parse(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		// The YAML parser's "unmarshal errors:" list: one error per line.
		msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
		msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
		var errs []error
		for _, line := range strings.Split(msg, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				errs = append(errs, fmt.Errorf("config: %s", line))
			}
		}
		return nil, errors.Join(errs...)
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if tree == nil {
		return nil, errors.New("config: empty file: at least one check is required")
	}
	var errs []error
	checkShape(tree, reflect.TypeFor[Config](), "", &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var c Config
	if err := json.Unmarshal(js, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	intOrString     = reflect.TypeFor[intstr.IntOrString]()
)

// checkShape compares a decoded JSON tree with the Go type it will be
// decoded into, and appends an error with its path for each unknown field
// and each value of the wrong type. encoding/json's own strict mode stops at
// the first problem and names no index; this names them all.
func checkShape(v any, t reflect.Type, path string, errs *[]error) {
	if v == nil {
		return // null: the zero value
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fail := func(want string) {
		*errs = append(*errs, Errorf(orRoot(path), "must be %s, not %s", want, jsonKind(v)))
	}
	switch {
	case t == intOrString:
		switch n := v.(type) {
		case string:
		case float64:
			if n != math.Trunc(n) || n < math.MinInt32 || n > math.MaxInt32 {
				fail("an integer or a string")
			}
		default:
			fail("an integer or a string")
		}
		return
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		if _, ok := v.(string); !ok {
			fail("a string")
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			fail("an object")
			return
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				*errs = append(*errs, Errorf(join(path, k), "unknown field"))
				continue
			}
			checkShape(m[k], ft, join(path, k), errs)
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			if _, ok := v.(string); !ok {
				fail("a base64 string")
			}
			return
		}
		l, ok := v.([]any)
		if !ok {
			fail("a list")
			return
		}
		for i, e := range l {
			checkShape(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			fail("an object")
			return
		}
		for k, e := range m {
			checkShape(e, t.Elem(), join(path, k), errs)
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			fail("a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			fail("true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(float64)
		bits := t.Bits()
		lo, hi := -math.Pow(2, float64(bits-1)), math.Pow(2, float64(bits-1))-1
		if !ok || n != math.Trunc(n) || n < lo || n > hi {
			fail(fmt.Sprintf("an integer (%d-bit)", bits))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(float64)
		if !ok || n != math.Trunc(n) || n < 0 || n > math.Pow(2, float64(t.Bits()))-1 {
			fail("a non-negative integer")
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(float64); !ok {
			fail("a number")
		}
	}
}

// jsonFields maps each JSON field name of struct type t to its type,
// following encoding/json's rules: embedded structs without a name are
// inlined, and a shallower field shadows a deeper one of the same name.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var embedded []reflect.Type
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	for _, et := range embedded {
		for k, v := range jsonFields(et) {
			if _, shadowed := out[k]; !shadowed {
				out[k] = v
			}
		}
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

func jsonKind(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case float64:
		return fmt.Sprintf("number %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

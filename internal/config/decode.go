package config

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Load reads, strictly decodes, defaults and validates the YAML (or JSON)
// file at path, with the kinds' rules r (kinds.Rules). The error lists every problem found, one per line, each
// prefixed with its field path (see Parse).
func Load(path string, r Rules) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, r)
}

// Parse strictly decodes YAML or JSON, applies defaults and validates.
//
// Strict means: duplicate keys, unknown fields and values of the wrong type
// are errors, each reported with its path ("checks[1].tcpSocket.prot: unknown
// field"). The returned error joins every error found (errors.Join), so its
// text is one problem per line; the config is nil whenever err is not.
func Parse(data []byte, r Rules) (*Config, error) {
	js, err := toJSON(data)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if tree == nil {
		return nil, errors.New("config: empty file: at least one check is required")
	}
	var shapeErrs []error
	checkShape(tree, reflect.TypeFor[Config](), "", &shapeErrs)
	// Decode even after shape errors, so that one typo does not hide the
	// other problems: encoding/json skips what does not fit and fills the
	// rest. A semantic error on a field that already has a shape error
	// (its value was skipped) would only repeat it, and is dropped.
	var c Config
	if err := json.Unmarshal(js, &c); err != nil {
		var skipped *json.UnmarshalTypeError
		switch {
		case len(shapeErrs) == 0:
			return nil, fmt.Errorf("config: %w", err)
		case !errors.As(err, &skipped):
			// Decoding stopped part-way (a value its parser refused): what
			// was not decoded would raise false errors.
			return nil, errors.Join(shapeErrs...)
		}
	}
	c.SetDefaults(r)
	errs := shapeErrs
	for _, e := range unjoin(c.Validate(r)) {
		if !underAny(e, shapeErrs) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

// strictError turns sigs.k8s.io/json's `unknown field "a.b"` (or
// `duplicate field "a.b"`) into "a.b: unknown field", the path first as
// in every other error.
func strictError(e error) error {
	msg := e.Error()
	for _, what := range []string{"unknown field", "duplicate field"} {
		if q, ok := strings.CutPrefix(msg, what+" "); ok {
			if path, err := strconv.Unquote(q); err == nil {
				return Errorf(orRoot(requote(path)), "%s", what)
			}
		}
	}
	return fmt.Errorf("config: %s", msg)
}

// requote rewrites a path as sigs.k8s.io/json writes it (keys joined by
// ".", indexes as "[n]", nothing quoted) in this package's form, where a
// key that is not a plain name is quoted: `a.b c[0].x` becomes
// `a["b c"][0].x`. The library's form is ambiguous for a key that holds
// "." or "[n]"; such a key is split where it holds them, which still gives
// one token that names where the problem is.
func requote(path string) string {
	out := ""
	for first := true; ; first = false {
		// A key runs to the next "." or to an index "[digits]".
		end := len(path)
		for i := 0; i < len(path); i++ {
			if path[i] == '.' {
				end = i
				break
			}
			if path[i] == '[' {
				if n := indexLen(path[i:]); n > 0 {
					end = i
					break
				}
			}
		}
		if !first || indexLen(path) == 0 { // the root is an object: a key comes first
			out = join(out, path[:end])
		}
		path = path[end:]
		for n := indexLen(path); n > 0; n = indexLen(path) {
			out = orRoot(out) + path[:n]
			path = path[n:]
		}
		if path == "" {
			return out
		}
		path = path[1:] // the "." before the next key
	}
}

// indexLen is the length of the "[digits]" that s starts with, or 0.
func indexLen(s string) int {
	if len(s) < 3 || s[0] != '[' {
		return 0
	}
	i := 1
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 1 || i >= len(s) || s[i] != ']' {
		return 0
	}
	return i + 1
}

// syntaxError says where a JSON file stops parsing: line, column and byte
// offset, from encoding/json's SyntaxError (a truncated 10 MB file must
// not be refused with no location). Other errors are returned as they are.
func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		// sigs.k8s.io/json's own syntax errors carry no offset we can
		// read: ask encoding/json, which reports the same problem.
		var tree any
		if e := json.Unmarshal(data, &tree); e == nil || !errors.As(e, &se) {
			return fmt.Errorf("config: %w", err)
		}
	}
	// Offset counts the bytes read, the offending one included; at the end
	// of the input the position is just past the last byte.
	pos := len(data)
	if int(se.Offset) < len(data) {
		pos = max(int(se.Offset)-1, 0)
	}
	line := 1 + bytes.Count(data[:pos], []byte("\n"))
	col := pos - bytes.LastIndexByte(data[:pos], '\n')
	return fmt.Errorf("config: line %d, column %d (offset %d): %s", line, col, pos, se.Error())
}

// toJSON turns the file into JSON. A file that is a JSON object is
// decoded as JSON (duplicate keys refused, with sigs.k8s.io/json as the
// apiserver's strict decoding does), so that escapes YAML does not read,
// such as a non-BMP character written as a surrogate pair ("\ud83d\ude00",
// what Python's json.dumps writes), mean what they mean in JSON. Anything
// else is YAML, converted strictly (duplicate keys refused).
func toJSON(data []byte) ([]byte, error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		var tree any
		strict, err := sigsjson.UnmarshalStrict(t, &tree, sigsjson.DisallowDuplicateFields)
		if err != nil {
			return nil, syntaxError(t, err)
		}
		var errs []error
		for _, e := range strict {
			errs = append(errs, strictError(e))
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return t, nil
	}
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
	return js, nil
}

// unjoin returns the errors joined in err (errors.Join), or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// underAny reports whether e ("path: message") is about a field at or
// under the path of one of errs.
func underAny(e error, errs []error) bool {
	p, _, _ := strings.Cut(e.Error(), ": ")
	for _, o := range errs {
		q, _, _ := strings.Cut(o.Error(), ": ")
		if p == q || strings.HasPrefix(p, q+".") || strings.HasPrefix(p, q+"[") {
			return true
		}
	}
	return false
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	intOrString     = reflect.TypeFor[IntOrString]()
)

// checkShape compares a decoded JSON tree with the Go type it will be
// decoded into, and appends an error with its path for each unknown field
// and each value of the wrong type, matching field names case-sensitively.
//
// Why not sigs.k8s.io/json's strict mode, which the apiserver uses and
// healthbridge links (toJSON uses it for duplicate keys): it reports every
// unknown field with its path only up to the first value of the wrong
// type, where decoding stops, and names that one in Go's terms ("cannot
// unmarshal string into Go struct field Probe.checks.periodSeconds of type
// int32"). A config with a typo and a wrong type would show one problem
// at a time; this walk shows them all, in the config's terms.
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
	case reflect.PointerTo(t).Implements(jsonUnmarshaler):
		// A value with a parser of its own (a status range) says what is
		// wrong, here with the field's path.
		b, _ := json.Marshal(v)
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(b); err != nil {
			*errs = append(*errs, Errorf(orRoot(path), "%v", err))
		}
		return
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		str, ok := v.(string)
		if !ok {
			fail("a string")
			return
		}
		// The value's own parser (a role's name) says what is wrong, here
		// with the field's path.
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(str)); err != nil {
			*errs = append(*errs, Errorf(orRoot(path), "%v", err))
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
			checkShape(e, t.Elem(), path+"["+strconv.Quote(k)+"]", errs)
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

// join appends a field name to path: ".name", or ["name"] quoted when it
// is not a plain name (a typo may hold spaces, colons or anything else,
// and a path must stay one token before its ": ").
func join(path, key string) string {
	if !plainName(key) {
		return orRoot(path) + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// plainName reports whether key is a letter followed by letters, digits,
// '_' or '-'.
func plainName(key string) bool {
	for i, r := range key {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '_' || r == '-')
		if !ok {
			return false
		}
	}
	return key != ""
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

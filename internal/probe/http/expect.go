package http

import (
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/healthbridge/healthbridge/internal/config"
)

// Expectation limits.
const (
	// DefaultMaxBodyBytes is how much of a body expectations read unless
	// expect.maxBodyBytes says otherwise: 64 KiB, enough for the health
	// documents of Spring Boot's actuator or a Kubernetes component, which
	// the kubelet's 10 KiB cut can split in the middle.
	DefaultMaxBodyBytes = 64 << 10
	// MaxMaxBodyBytes is the largest expect.maxBodyBytes: 10 MiB.
	MaxMaxBodyBytes = 10 << 20
	// shown bounds a value quoted in a failure's output.
	shown = 100
)

// expectations is a compiled config.HTTPExpect.
type expectations struct {
	status        config.StatusCodes // nil: 200-399, the kubelet's rule
	body, notBody *regexp.Regexp
	json          []config.JSONExpect
	headers       []headerExpect
	maxResponse   time.Duration // 0: none
	maxBody       int64
}

type headerExpect struct {
	name string
	re   *regexp.Regexp
}

// compileExpect compiles e (nil: nil), with every problem as an error
// naming its field under path ("checks[0].httpGet.expect").
func compileExpect(e *config.HTTPExpect, path string) (*expectations, []error) {
	if e == nil {
		return nil, nil
	}
	var errs []error
	x := &expectations{status: e.Status, json: e.JSON, maxResponse: time.Duration(e.MaxResponseMs) * time.Millisecond, maxBody: e.MaxBodyBytes}
	for i, r := range e.Status {
		if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
			errs = append(errs, config.Errorf(fmt.Sprintf("%s.status[%d]", path, i), "want a code or a range within 100-599, low to high, got %d-%d", r.Min, r.Max))
		}
	}
	re := func(field, expr string) *regexp.Regexp {
		if expr == "" {
			return nil
		}
		r, err := regexp.Compile(expr)
		if err != nil {
			errs = append(errs, config.Errorf(path+"."+field, "%v", err))
		}
		return r
	}
	x.body, x.notBody = re("bodyRegex", e.BodyRegex), re("bodyNotRegex", e.BodyNotRegex)
	for i, j := range e.JSON {
		p := fmt.Sprintf("%s.json[%d]", path, i)
		if j.Path == "" {
			errs = append(errs, config.Errorf(p+".path", "required"))
		}
		switch j.Equals.(type) {
		case nil, string, float64, bool:
		default:
			errs = append(errs, config.Errorf(p+".equals", "want a string, number, boolean or null, got %T", j.Equals))
		}
	}
	for i, h := range e.Headers {
		p := fmt.Sprintf("%s.headers[%d]", path, i)
		if h.Name == "" || strings.ContainsAny(h.Name, " \t\r\n:") {
			errs = append(errs, config.Errorf(p+".name", "invalid header name %q", h.Name))
		}
		r, err := regexp.Compile(h.Regex)
		if err != nil {
			errs = append(errs, config.Errorf(p+".regex", "%v", err))
		}
		x.headers = append(x.headers, headerExpect{name: h.Name, re: r})
	}
	if e.MaxResponseMs < 0 {
		errs = append(errs, config.Errorf(path+".maxResponseMs", "must be ≥ 0, got %d", e.MaxResponseMs))
	}
	switch {
	case e.MaxBodyBytes == 0:
		x.maxBody = DefaultMaxBodyBytes
	case e.MaxBodyBytes < 0 || e.MaxBodyBytes > MaxMaxBodyBytes:
		errs = append(errs, config.Errorf(path+".maxBodyBytes", "must be 1-%d, got %d", MaxMaxBodyBytes, e.MaxBodyBytes))
	}
	return x, errs
}

// statusOK reports whether code passes: in expect.status, or 200-399.
func (x *expectations) statusOK(code int) bool {
	if len(x.status) == 0 {
		return code >= 200 && code < 400
	}
	return x.status.Has(code)
}

// judge returns what the response fails of the expectations beyond the
// status, one phrase each, in the config's order; none: it passes. A
// phrase names the expectation and what came instead, but never quotes
// the body beyond the JSON value a path selected (the body goes to the
// debug log only, as a failing httpGet's).
func (x *expectations) judge(h http.Header, body []byte, elapsed time.Duration) []string {
	var fails []string
	if x.maxResponse > 0 && elapsed > x.maxResponse {
		fails = append(fails, fmt.Sprintf("response took %v, over maxResponseMs %d", elapsed.Round(time.Millisecond), x.maxResponse.Milliseconds()))
	}
	for _, he := range x.headers {
		vals := h.Values(he.name)
		switch {
		case len(vals) == 0:
			fails = append(fails, fmt.Sprintf("no %s header (want one matching %q)", http.CanonicalHeaderKey(he.name), he.re))
		case !he.re.MatchString(strings.Join(vals, ", ")):
			fails = append(fails, fmt.Sprintf("header %s is %s, not matching %q", http.CanonicalHeaderKey(he.name), quoteClip(strings.Join(vals, ", ")), he.re))
		}
	}
	if x.body != nil && !x.body.Match(body) {
		fails = append(fails, fmt.Sprintf("body does not match bodyRegex %q", x.body))
	}
	if x.notBody != nil {
		if loc := x.notBody.FindIndex(body); loc != nil {
			fails = append(fails, fmt.Sprintf("body matches bodyNotRegex %q (at byte %d)", x.notBody, loc[0]))
		}
	}
	if len(x.json) > 0 {
		if !gjson.ValidBytes(body) {
			return append(fails, fmt.Sprintf("body is not JSON (%d bytes), so json paths cannot be read", len(body)))
		}
		for _, j := range x.json {
			got := gjson.GetBytes(body, j.Path)
			switch {
			case !got.Exists():
				fails = append(fails, fmt.Sprintf("json %s: absent", j.Path))
			case j.Equals != nil && !reflect.DeepEqual(got.Value(), j.Equals):
				fails = append(fails, fmt.Sprintf("json %s is %s, want %s", clip(j.Path), jsonValue(got), clip(jsonText(j.Equals))))
			}
		}
	}
	return fails
}

// jsonText writes a scalar as JSON.
func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// jsonValue is a value a path selected, for a failure's words: a string
// quoted, anything else as its JSON text; clipped either way.
func jsonValue(r gjson.Result) string {
	if r.Type == gjson.String {
		return quoteClip(r.Str)
	}
	return clip(r.Raw)
}

// clip bounds a value shown in a failure to shown bytes of valid UTF-8 on
// one line.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= shown {
		return s
	}
	cut := shown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// quoteClip is s Go-quoted (control bytes escaped), at most about twice
// shown bytes: the text is cut, never an escape.
func quoteClip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	q := strconv.Quote(s)
	if len(q) <= 2*shown {
		return q
	}
	r := []rune(s)
	for len(r) > 0 && len(strconv.Quote(string(r))) > 2*shown {
		r = r[:len(r)*3/4]
	}
	return strconv.Quote(string(r)) + "…"
}

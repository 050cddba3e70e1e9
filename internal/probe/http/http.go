// Package http is the httpGet probe, with the kubelet's semantics
// (pkg/probe/http):
//
//   - a status of 200-399 is success, anything else a failure;
//   - HTTPS does not verify certificates (unless httpGet.tls says so:
//     caFile, serverName, a client certificate);
//   - redirects are followed only to the same host, at most 10; a redirect to
//     another host is not followed and the 3xx itself is judged (a success
//     with a warning, as the kubelet); more than 10 (a loop) is a failure;
//   - at most 10 KiB of the body is read; it is the output of a success,
//     while a failure's output is "HTTP probe failed with statuscode: N"
//     alone (the body goes to debug logs only);
//   - "User-Agent: healthbridge/<version>" and "Accept: */*" unless set; a
//     header set to "" is not sent at all;
//   - proxy environment variables are ignored, and every probe opens a new
//     connection (no keep-alive);
//   - the context's deadline covers connect, headers and body.
package http

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/tlsclient"
)

const (
	// MaxBody is how much of a response body is read: 10 KiB, as the kubelet.
	MaxBody = 10 << 10
	// MaxRedirects is how many same-host redirects are followed, as the
	// kubelet (and net/http's default).
	MaxRedirects = 10
)

// errTooManyRedirects is returned by the redirect policy after MaxRedirects.
var errTooManyRedirects = errors.New("stopped after 10 redirects")

// Kind is the httpGet kind: the kubelet's httpGet (path, port, host,
// scheme, httpHeaders) plus tls.
var Kind = probe.Kind{
	Name: "httpGet",
	Has:  func(c *config.Check) bool { return c.HTTPGet != nil },
	Defaults: func(c *config.Check) {
		if c.HTTPGet.Scheme == "" {
			c.HTTPGet.Scheme = config.URISchemeHTTP
		}
		if c.HTTPGet.Path == "" {
			c.HTTPGet.Path = "/"
		}
	},
	Validate: validate,
	New:      New,
	OneShot: &probe.OneShot{
		Words:   []string{"http://", "https://"},
		Schemes: []string{"http", "https"},
		Target:  func(u *url.URL) ([]string, error) { return []string{u.String()}, nil },
		Usage:   "http(s)://HOST:PORT/PATH [--header K:V]... [--timeout 5s] [--insecure] [--ca FILE] [--server-name N] [--cert FILE --key FILE] [-v]",
		Flags:   oneShot,
	},
}

func validate(c *config.Check, path string) []error {
	h := c.HTTPGet
	p := path + ".httpGet"
	errs := config.ValidPort(p+".port", h.Port)
	if h.Scheme != config.URISchemeHTTP && h.Scheme != config.URISchemeHTTPS {
		errs = append(errs, config.Errorf(p+".scheme", "must be HTTP or HTTPS, got %q", h.Scheme))
	}
	if !strings.HasPrefix(h.Path, "/") {
		errs = append(errs, config.Errorf(p+".path", "must start with '/', got %q", h.Path))
	}
	for j, hd := range h.HTTPHeaders {
		if hd.Name == "" || strings.ContainsAny(hd.Name, " \t\r\n:") {
			errs = append(errs, config.Errorf(fmt.Sprintf("%s.httpHeaders[%d].name", p, j), "invalid header name %q", hd.Name))
		}
		if strings.ContainsAny(hd.Value, "\r\n") {
			errs = append(errs, config.Errorf(fmt.Sprintf("%s.httpHeaders[%d].value", p, j), "must not contain a line break"))
		}
	}
	if h.Method != "" && !validMethod(h.Method) {
		errs = append(errs, config.Errorf(p+".method", "want an HTTP method such as GET, HEAD or POST, got %q", h.Method))
	}
	_, xerrs := compileExpect(h.Expect, p+".expect")
	errs = append(errs, xerrs...)
	return append(errs, config.ValidTLS(p+".tls", h.TLS)...)
}

// validMethod reports whether m is an HTTP method token (RFC 9110's
// tchar), upper case as every registered method is.
func validMethod(m string) bool {
	for _, c := range m {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return m != ""
}

// oneShot is `healthbridge probe http(s)://…`. Unlike the sidecar's
// httpGet (the kubelet's rule), it verifies certificates unless told
// --insecure, as curl.
func oneShot(fs *pflag.FlagSet) func(probe.Args) (probe.Prober, string, error) {
	headers := &headerFlag{h: http.Header{}}
	fs.Var(headers, "header", "request header Name:Value (repeatable)")
	tlsFlags := tlsclient.Flags(fs)
	method := fs.String("method", "", "request method (default GET)")
	data := fs.String("data", "", "request body")
	statuses := fs.StringArray("expect-status", nil, "a passing status code or range, 200 or 200-299 (repeatable; default 200-399)")
	bodyRe := fs.String("expect-body", "", "a regular expression the body must match")
	jsonExp := fs.StringArray("expect-json", nil, "PATH=VALUE the body, read as JSON, must hold (repeatable; VALUE is JSON, or else a string)")
	return func(a probe.Args) (probe.Prober, string, error) {
		if len(a.Pos) != 1 {
			return nil, "", fmt.Errorf("unexpected argument %q", a.Pos[1])
		}
		u, err := url.Parse(a.Pos[0])
		if err != nil || u.Host == "" {
			return nil, "", fmt.Errorf("invalid URL %q", a.Pos[0])
		}
		tc, _, err := tlsFlags()
		if err != nil {
			return nil, "", err
		}
		if *method != "" && !validMethod(*method) {
			return nil, "", fmt.Errorf("--method: want an HTTP method such as GET, HEAD or POST, got %q", *method)
		}
		var x *config.HTTPExpect
		if len(*statuses) > 0 || *bodyRe != "" || len(*jsonExp) > 0 {
			x = &config.HTTPExpect{BodyRegex: *bodyRe}
			for _, st := range *statuses {
				var r config.StatusRange
				if err := r.UnmarshalJSON([]byte(strconv.Quote(st))); err != nil {
					return nil, "", fmt.Errorf("--expect-status: %w", err)
				}
				x.Status = append(x.Status, r)
			}
			for _, pv := range *jsonExp {
				path, val, ok := strings.Cut(pv, "=")
				if !ok {
					return nil, "", fmt.Errorf("--expect-json: want PATH=VALUE, got %q", pv)
				}
				var v any = val // not JSON: the string itself ("UP")
				if err := json.Unmarshal([]byte(val), &v); err != nil {
					v = val
				}
				x.JSON = append(x.JSON, config.JSONExpect{Path: path, Equals: v})
			}
			if _, errs := compileExpect(x, "--expect"); len(errs) > 0 {
				return nil, "", errors.Join(errs...)
			}
		}
		return NewURL(u, Options{Header: headers.h, UserAgent: a.Deps.UserAgent, TLS: tc, Method: *method, Body: *data, Expect: x}), u.String(), nil
	}
}

// headerFlag is a repeatable --header Name:Value.
type headerFlag struct{ h http.Header }

func (f *headerFlag) String() string { return "" }
func (f *headerFlag) Type() string   { return "Name:Value" }
func (f *headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want Name:Value, got %q", s)
	}
	f.h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	return nil
}

// Prober sends one request (a GET, unless Options.Method) per Probe call.
type Prober struct {
	url    *url.URL
	header http.Header
	host   string // Host header override
	client *http.Client
	method string        // "": GET
	body   string        // request body; "": none
	expect *expectations // nil: the kubelet's rule
	// minValidity: a passing run warns while the server's certificate
	// expires sooner than this; 0: never.
	minValidity time.Duration
}

// Options are the parts of an httpGet probe beyond its URL.
type Options struct {
	// Header is sent with every request; a "Host" entry sets the Host header.
	Header http.Header
	// UserAgent is the default User-Agent; "healthbridge" when empty.
	UserAgent string
	// TLS is the client TLS config for https; nil verifies the server with
	// the system roots. The sidecar's probes skip verification unless their
	// httpGet.tls says otherwise, as the kubelet.
	TLS *tls.Config
	// Method is the request method; "" is GET.
	Method string
	// Body is the request body; "" sends none.
	Body string
	// Expect, when not nil, judges the response instead of the kubelet's
	// status rule; it must be valid (validate checks it).
	Expect *config.HTTPExpect
	// MinValidity makes a passing run over HTTPS a warning while the
	// server's earliest certificate expiry is closer than this; 0: never.
	MinValidity time.Duration
}

// New builds an HTTP prober from c.HTTPGet: scheme, host (default
// 127.0.0.1), port, path, httpHeaders and tls. HTTPS does not verify the
// certificate, as the kubelet, unless httpGet.tls asks for it. TLS files
// are read now: a bad one is a start-up error.
func New(c *config.Check, d probe.Deps) (probe.Prober, error) {
	g := c.HTTPGet
	if g == nil {
		return nil, config.Errorf("httpGet", "required")
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	raw := scheme + "://" + config.HostPort(g.Host, config.PortNumber(g.Port)) + path
	u, err := url.Parse(raw)
	if err != nil {
		return nil, config.Errorf("httpGet.path", "%v", err)
	}
	h := http.Header{}
	for _, hd := range g.HTTPHeaders {
		h.Add(hd.Name, hd.Value)
	}
	tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the kubelet does not verify probe certificates
	if g.TLS != nil {
		if tc, err = tlsclient.Config(g.TLS, "httpGet.tls"); err != nil {
			return nil, err
		}
	}
	var minValidity time.Duration
	if g.TLS != nil {
		minValidity = g.TLS.MinValidity.Duration
	}
	return NewURL(u, Options{Header: h, UserAgent: d.UserAgent, TLS: tc, Method: g.Method, Body: g.Body, Expect: g.Expect, MinValidity: minValidity}), nil
}

// NewURL builds a prober for u with opts.
func NewURL(u *url.URL, opts Options) *Prober {
	h := opts.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	host := h.Get("Host")
	h.Del("Host")
	// As the kubelet's request.go: a header the user did not set gets its
	// default; one set to "" is not sent at all (for User-Agent, net/http
	// sends none when the key is present with an empty value).
	if _, ok := h["User-Agent"]; !ok {
		ua := opts.UserAgent
		if ua == "" {
			ua = "healthbridge"
		}
		h.Set("User-Agent", ua)
	}
	if _, ok := h["Accept"]; !ok {
		h.Set("Accept", "*/*")
	} else if h.Get("Accept") == "" {
		h.Del("Accept")
	}
	tr := &http.Transport{
		Proxy:               nil,                        // proxy variables are ignored, as the kubelet
		DialContext:         probe.Dialer().DialContext, // no TIME_WAIT left behind
		TLSClientConfig:     opts.TLS,
		DisableKeepAlives:   true,
		DisableCompression:  true,
		MaxIdleConnsPerHost: -1,
	}
	x, _ := compileExpect(opts.Expect, "expect") // validated with the config
	p := &Prober{url: u, header: h, host: host, method: opts.Method, body: opts.Body, expect: x, minValidity: opts.MinValidity}
	p.client = &http.Client{Transport: tr, CheckRedirect: p.checkRedirect}
	return p
}

// checkRedirect follows same-host redirects only, as the kubelet's
// followNonLocalRedirects=false: another host stops the chain and the 3xx
// response is judged instead.
func (p *Prober) checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= MaxRedirects {
		return errTooManyRedirects
	}
	// Keep our headers (and Host override) on the redirected request.
	for k, v := range p.header {
		req.Header[k] = v
	}
	if p.host != "" && req.URL.Host == via[0].URL.Host {
		req.Host = p.host
	}
	return nil
}

// Probe sends the request and judges the response; over HTTPS the result
// carries the server's earliest certificate expiry, and a passing one
// warns when that is closer than tls.minValidity.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	r, cs := p.probe(ctx)
	r.CertExpiry = probe.EarliestExpiry(cs)
	r.WarnIfExpiring(p.minValidity, time.Now())
	return r
}

// probe is Probe before the certificate's expiry is judged; it also
// returns the TLS state of the response judged (nil over HTTP or when no
// response came).
func (p *Prober) probe(ctx context.Context) (probe.Result, *tls.ConnectionState) {
	method := p.method
	if method == "" {
		method = http.MethodGet
	}
	var reqBody io.Reader
	if p.body != "" {
		reqBody = strings.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.url.String(), reqBody)
	if err != nil {
		return probe.Unknown(fmt.Errorf("http: %w", err)), nil
	}
	req.Header = p.header.Clone()
	if p.host != "" {
		req.Host = p.host
	}
	sent := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return probe.Failure("%s", describe(err)), nil
	}
	defer resp.Body.Close()
	if p.expect != nil {
		return p.judge(resp, sent), resp.TLS
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return probe.Result{Outcome: probe.OutcomeFailure, HTTPStatus: resp.StatusCode,
			Output: fmt.Sprintf("HTTP probe failed reading body (status %d): %s", resp.StatusCode, describe(err))}, resp.TLS
	}
	res := probe.Result{HTTPStatus: resp.StatusCode, Output: string(body)}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		// A redirect we chose not to follow (or a 3xx without Location): a
		// warning, which counts as success, in the kubelet's exact words.
		res.Outcome = probe.OutcomeWarning
		res.Output = "Probe terminated redirects, Response body: " + string(body)
	case resp.StatusCode >= 200 && resp.StatusCode < 400:
		res.Outcome = probe.OutcomeSuccess
	default:
		// As the kubelet (kubernetes#99425): a failure's output never
		// carries the response body, which can hold internal details that
		// would reach logs, events and HTTP answers; it goes to debug logs
		// only, through Detail.
		res.Outcome = probe.OutcomeFailure
		res.Output = fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		if len(body) > 0 {
			res.Detail = "response body: " + string(body)
		}
	}
	return res, resp.TLS
}

// describe turns a client error into a short reason, saying "timeout" for a
// deadline rather than Go's long wrapped text.
func describe(err error) string {
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Sprintf("Get %q: timeout", ue.URL)
		}
		return "timeout"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// judge reads up to expect.maxBodyBytes of the body and judges the
// response by the expectations: the status first (the kubelet's words for
// a wrong one), then every other expectation, all failures named.
func (p *Prober) judge(resp *http.Response, sent time.Time) probe.Result {
	x := p.expect
	body, err := io.ReadAll(io.LimitReader(resp.Body, x.maxBody+1))
	elapsed := time.Since(sent)
	res := probe.Result{HTTPStatus: resp.StatusCode, Outcome: probe.OutcomeFailure}
	switch {
	case err != nil:
		res.Output = fmt.Sprintf("HTTP probe failed reading body (status %d): %s", resp.StatusCode, describe(err))
		return res
	case int64(len(body)) > x.maxBody:
		res.Output = fmt.Sprintf("HTTP probe failed: the response body is over expect.maxBodyBytes (%d), so the expectations were not judged", x.maxBody)
		return res
	}
	if len(body) > 0 {
		res.Detail = "response body: " + string(body[:min(len(body), MaxBody)])
	}
	if !x.statusOK(resp.StatusCode) {
		res.Output = fmt.Sprintf("HTTP probe failed with statuscode: %d (expect.status: %s)", resp.StatusCode, statusText(x.status))
		return res
	}
	if fails := x.judge(resp.Header, body, elapsed); len(fails) > 0 {
		res.Output = fmt.Sprintf("HTTP probe failed (status %d): %s", resp.StatusCode, strings.Join(fails, "; "))
		return res
	}
	res.Outcome, res.Detail = probe.OutcomeSuccess, ""
	res.Output = string(body[:min(len(body), MaxBody)])
	return res
}

// statusText lists passing codes as a config writes them.
func statusText(sc config.StatusCodes) string {
	if len(sc) == 0 {
		return "200-399"
	}
	var parts []string
	for _, r := range sc {
		if r.Min == r.Max {
			parts = append(parts, strconv.Itoa(r.Min))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.Min, r.Max))
		}
	}
	return strings.Join(parts, ", ")
}

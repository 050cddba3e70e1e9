package config

import (
	"errors"
	"fmt"
	"net"

	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"healthbridge/health"

	"k8s.io/apimachinery/pkg/util/intstr"
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Validate checks a defaulted Config and returns every problem found, joined
// (errors.Join), each as "field.path: message". It does not touch the
// machine: whether an exec command exists is checked when the check is built
// at start-up (serve), not here.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, Errorf(path, format, args...)) }

	if err := validAddress(c.Listen); err != nil {
		add("listen", "%v", err)
	}
	if c.HasKind(KindTTL) {
		if err := validAddress(c.AdminListen); err != nil {
			add("adminListen", "%v", err)
		} else if c.AdminListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			add("adminListen", "must differ from listen: the push endpoints must never be on the public address")
		} else if !c.AllowRemoteAdmin && !isLoopback(c.AdminListen) {
			add("adminListen", "%q is not a loopback address: anyone who can reach it can mark checks passing; use 127.0.0.1:PORT or [::1]:PORT, or set allowRemoteAdmin: true if the network is trusted", c.AdminListen)
		}
	}
	if a := c.Agent; a != nil {
		if err := validAddress(a.Listen); err != nil {
			add("agent.listen", "%v", err)
		} else if a.Listen == c.Listen && !strings.HasSuffix(a.Listen, ":0") {
			add("agent.listen", "must differ from listen")
		}
		if a.WarnWeightPercent < 0 || a.WarnWeightPercent > 100 {
			add("agent.warnWeightPercent", "must be 0 (off) or 1-100, got %d", a.WarnWeightPercent)
		}
	}
	if c.ShutdownDelaySeconds < 0 {
		add("shutdownDelaySeconds", "must be >= 0")
	}
	if c.DrainDelaySeconds < 0 {
		add("drainDelaySeconds", "must be >= 0")
	} else if c.DrainDelaySeconds > max(c.ShutdownDelaySeconds, 0) {
		add("drainDelaySeconds", "must not exceed shutdownDelaySeconds (%d), which bounds the whole shutdown, got %d", c.ShutdownDelaySeconds, c.DrainDelaySeconds)
	}
	if c.FailureStatusCode < 400 || c.FailureStatusCode > 599 {
		add("failureStatusCode", "must be 400-599 (a load balancer reads anything below 400 as healthy)")
	}
	if len(c.Checks) == 0 {
		add("checks", "at least one check is required")
	}
	seen := map[string]int{}
	for i := range c.Checks {
		ch := &c.Checks[i]
		p := fmt.Sprintf("checks[%d]", i)
		if first, dup := seen[ch.Name]; dup && ch.Name != "" {
			add(p+".name", "duplicate name %q (first used by checks[%d])", ch.Name, first)
		} else {
			seen[ch.Name] = i
		}
		errs = append(errs, ch.validate(p)...)
	}
	return errors.Join(errs...)
}

func (ch *Check) validate(p string) []error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, Errorf(path, format, args...)) }

	switch {
	case ch.Name == "":
		add(p+".name", "required")
	case !namePattern.MatchString(ch.Name):
		add(p+".name", "%q: only letters, digits, '-', '_' and '.' are allowed", ch.Name)
	}

	roleSeen := map[Role]bool{}
	for j, r := range ch.Roles {
		if roleSeen[r] {
			add(fmt.Sprintf("%s.roles[%d]", p, j), "duplicate role %q", r)
		}
		roleSeen[r] = true
	}
	if roleSeen[RoleStartup] && len(roleSeen) > 1 {
		add(p+".roles", "startup cannot be combined with other roles: a startup check gates the others")
	}

	for _, f := range []struct {
		name string
		v    int32
		min  int32
	}{
		{"initialDelaySeconds", ch.InitialDelaySeconds, 0},
		{"periodSeconds", ch.PeriodSeconds, 1},
		{"timeoutSeconds", ch.TimeoutSeconds, 1},
		{"successThreshold", ch.SuccessThreshold, 1},
		{"failureThreshold", ch.FailureThreshold, 1},
		{"startPeriodSeconds", ch.StartPeriodSeconds, 0},
		{"startIntervalSeconds", ch.StartIntervalSeconds, 1},
	} {
		if f.v < f.min {
			add(p+"."+f.name, "must be >= %d, got %d", f.min, f.v)
		}
	}
	if ch.TerminationGracePeriodSeconds != nil && *ch.TerminationGracePeriodSeconds < 0 {
		add(p+".terminationGracePeriodSeconds", "must be >= 0")
	}
	if ch.SuccessThreshold > 1 && (ch.HasRole(RoleLiveness) || ch.HasRole(RoleStartup)) {
		add(p+".successThreshold", "must be 1 for liveness and startup checks, got %d (as Kubernetes)", ch.SuccessThreshold)
	}

	kinds := ch.setKinds()
	switch len(kinds) {
	case 0:
		add(p, "no probe: set exactly one of %s", kindList())
	case 1:
	default:
		add(p, "%d probes (%s): set exactly one", len(kinds), strings.Join(kinds, ", "))
	}
	if ch.StartingExitCode != 0 && ch.Exec == nil {
		add(p+".startingExitCode", "only applies to exec checks")
	}
	if ch.StartingExitCode < 0 || ch.StartingExitCode > 255 {
		add(p+".startingExitCode", "must be 1-255, got %d", ch.StartingExitCode)
	}

	if e := ch.Exec; e != nil {
		if len(e.Command) == 0 {
			add(p+".exec.command", "required: the argv to run (write [sh, -c, \"...\"] for a shell)")
		} else if e.Command[0] == "" {
			add(p+".exec.command[0]", "must not be empty")
		} else if strings.ContainsAny(e.Command[0], " \t") && !strings.Contains(e.Command[0], "/") {
			// The Kubernetes docs' exec pitfall: [ "ps -ef | grep python" ] is one argv word.
			add(p+".exec.command[0]", "%q contains spaces: exec runs an argv without a shell; write [sh, -c, %q]", e.Command[0], e.Command[0])
		}
	}
	if h := ch.HTTPGet; h != nil {
		errs = append(errs, validPort(p+".httpGet.port", h.Port)...)
		if h.Scheme != corev1.URISchemeHTTP && h.Scheme != corev1.URISchemeHTTPS {
			add(p+".httpGet.scheme", "must be HTTP or HTTPS, got %q", h.Scheme)
		}
		if !strings.HasPrefix(h.Path, "/") {
			add(p+".httpGet.path", "must start with '/', got %q", h.Path)
		}
		for j, hd := range h.HTTPHeaders {
			if hd.Name == "" || strings.ContainsAny(hd.Name, " \t\r\n:") {
				add(fmt.Sprintf("%s.httpGet.httpHeaders[%d].name", p, j), "invalid header name %q", hd.Name)
			}
			if strings.ContainsAny(hd.Value, "\r\n") {
				add(fmt.Sprintf("%s.httpGet.httpHeaders[%d].value", p, j), "must not contain a line break")
			}
		}
	}
	if t := ch.TCPSocket; t != nil {
		errs = append(errs, validPort(p+".tcpSocket.port", t.Port)...)
	}
	if g := ch.GRPC; g != nil {
		if g.Port < 1 || g.Port > 65535 {
			add(p+".grpc.port", "must be 1-65535, got %d", g.Port)
		}
		if t := g.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
			add(p+".grpc.tls", "certFile and keyFile go together")
		}
	}
	if k := ch.KubernetesPod; k != nil && k.MaxStalenessSeconds < 0 {
		add(p+".kubernetesPod.maxStalenessSeconds", "must be >= 0, got %d", k.MaxStalenessSeconds)
	}
	if r := ch.Rundir; r != nil {
		if r.Unit == "" {
			add(p+".rundir.unit", "required")
		} else if err := health.ValidUnitName(r.Unit); err != nil {
			add(p+".rundir.unit", "%v", err)
		}
		if r.MaxAgeSeconds < 0 {
			add(p+".rundir.maxAgeSeconds", "must be >= 0, got %d", r.MaxAgeSeconds)
		}
	}
	if t := ch.TTL; t != nil && t.Seconds < 1 {
		add(p+".ttl.seconds", "must be >= 1, got %d", t.Seconds)
	}
	return errs
}

func kindList() string {
	var s []string
	for _, k := range Kinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

func validPort(path string, port intstr.IntOrString) []error {
	if port.Type == intstr.String {
		if n, err := strconv.Atoi(port.StrVal); err == nil && n >= 1 && n <= 65535 {
			return nil
		}
		return []error{Errorf(path, "named port %q is not supported: a sidecar does not know the container's ports; use a number 1-65535", port.StrVal)}
	}
	if port.IntVal < 1 || port.IntVal > 65535 {
		return []error{Errorf(path, "must be 1-65535, got %d", port.IntVal)}
	}
	return nil
}

// PortNumber returns a validated port's number.
func PortNumber(port intstr.IntOrString) int {
	if port.Type == intstr.String {
		n, _ := strconv.Atoi(port.StrVal)
		return n
	}
	return int(port.IntVal)
}

func validAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be 0-65535, got %q", port)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, "/ ") {
		return fmt.Errorf("invalid host %q", host)
	}
	return nil
}

// isLoopback reports whether addr (host:port) listens on loopback only: a
// 127.0.0.0/8 or ::1 address, or "localhost". An empty host, 0.0.0.0, ::
// and any other name or address are not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

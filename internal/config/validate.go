package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"

	"regexp"
	"strconv"
	"strings"
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Validate checks a defaulted Config and returns every problem found, joined
// (errors.Join), each as "field.path: message"; the kinds' own rules come
// from r. It does not touch the machine: whether an exec command exists is
// checked when the check is built at start-up (serve), not here.
func (c *Config) Validate(r Rules) error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, Errorf(path, format, args...)) }

	if err := validAddress(c.Listen); err != nil {
		add("listen", "%v", err)
	}
	if c.HasAdmin(r) {
		if err := validAddress(c.AdminListen); err != nil {
			add("adminListen", "%v", err)
		} else if c.AdminListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			add("adminListen", "must differ from listen: the push endpoints must never be on the public address")
		} else if !c.AllowRemoteAdmin && !isLoopback(c.AdminListen) {
			add("adminListen", "%q is not a loopback address: anyone who can reach it can mark checks passing; use 127.0.0.1:PORT or [::1]:PORT, or set allowRemoteAdmin: true if the network is trusted", c.AdminListen)
		}
	}
	if c.GRPCListen != "" {
		if err := validAddress(c.GRPCListen); err != nil {
			add("grpcListen", "%v", err)
		} else if c.GRPCListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			add("grpcListen", "must differ from listen")
		}
		for i := range c.Checks {
			if n := c.Checks[i].Name; slices.Contains(GRPCRoleServices, n) {
				add(fmt.Sprintf("checks[%d].name", i), "%q is a gRPC service name of healthbridge's own (the %s verdict): rename the check while grpcListen is set", n, n)
			}
		}
		known := func(n string) bool {
			return n == "" || slices.Contains(GRPCRoleServices, n) || slices.ContainsFunc(c.Checks, func(ch Check) bool { return ch.Name == n })
		}
		for _, k := range slices.Sorted(maps.Keys(c.GRPCServices)) {
			if v := c.GRPCServices[k]; !known(v) {
				add(fmt.Sprintf("grpcServices[%q]", k), "%q is neither \"\", liveness, readiness, startup nor a check's name", v)
			}
		}
		if t := c.GRPCTLS; t != nil && (t.CertFile == "" || t.KeyFile == "") {
			add("grpcTLS", "certFile and keyFile are required")
		}
	} else if len(c.GRPCServices) > 0 || c.GRPCTLS != nil {
		add("grpcListen", "required by grpcServices and grpcTLS")
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
	if g := c.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		add("terminationGracePeriodSeconds", "must be >= 0, got %d", *g)
	}
	for i, n := range c.Notify {
		p := fmt.Sprintf("notify[%d]", i)
		if u, err := url.Parse(n.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(p+".url", "must be an http or https URL, got %q", n.URL)
		}
		if n.Format != "json" && n.Format != "text" {
			add(p+".format", "must be json or text, got %q", n.Format)
		}
		for _, name := range n.Checks {
			if !slices.ContainsFunc(c.Checks, func(ch Check) bool { return ch.Name == name }) {
				add(p+".checks", "no check named %q", name)
			}
		}
		if n.TimeoutSeconds < 1 {
			add(p+".timeoutSeconds", "must be >= 1, got %d", n.TimeoutSeconds)
		}
		if n.MaxAttempts < 1 {
			add(p+".maxAttempts", "must be >= 1, got %d", n.MaxAttempts)
		}
		for j, h := range n.Headers {
			hp := fmt.Sprintf("%s.headers[%d]", p, j)
			if h.Name == "" || strings.ContainsAny(h.Name, " \t\r\n:") {
				add(hp+".name", "invalid header name %q", h.Name)
			}
			set := 0
			for _, v := range []string{h.Value, h.ValueFromFile, h.ValueFromEnv} {
				if v != "" {
					set++
				}
			}
			if set != 1 {
				add(hp, "set exactly one of value, valueFromFile, valueFromEnv")
			}
		}
	}
	if !slices.Contains([]string{RestartNever, RestartOnFailure, RestartAlways}, c.RestartPolicy) {
		add("restartPolicy", "must be Never, OnFailure or Always, got %q", c.RestartPolicy)
	}
	if !slices.Contains([]string{LivenessNone, LivenessRestart, LivenessExit}, c.OnLivenessFailure) {
		add("onLivenessFailure", "must be none, restart or exit, got %q", c.OnLivenessFailure)
	}
	if len(c.Command) > 0 && c.Command[0] == "" {
		add("command[0]", "must not be empty")
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
		errs = append(errs, ch.validate(p, r)...)
	}
	return errors.Join(errs...)
}

func (ch *Check) validate(p string, r Rules) []error {
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

	var kinds []string
	if r != nil {
		kinds = r.Set(ch)
	}
	switch len(kinds) {
	case 0:
		add(p, "no probe: set exactly one of %s", kindList(r))
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
	if r != nil {
		errs = append(errs, r.Validate(ch, p)...)
	}
	return errs
}

func kindList(r Rules) string {
	if r == nil {
		return "(no kinds known)"
	}
	return strings.Join(r.Names(), ", ")
}

// ValidPort checks a Kubernetes port field (a number, or a numeric
// string); a named port is refused, since a sidecar does not know the
// container's ports. The error names path.
func ValidPort(path string, port IntOrString) []error {
	if port.IsString {
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
func PortNumber(port IntOrString) int {
	if port.IsString {
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

// ValidTLS checks a tls block (nil is fine): certFile and keyFile go
// together. Whether the files exist is checked at start-up.
func ValidTLS(path string, t *TLS) []error {
	if t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		return []error{Errorf(path, "certFile and keyFile go together")}
	}
	return nil
}

// GRPCRoleServices are the gRPC service names of the role verdicts, in the
// order of their HTTP endpoints (/livez, /readyz, /startupz).
var GRPCRoleServices = []string{"liveness", "readiness", "startup"}

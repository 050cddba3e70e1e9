// Package config is healthbridge's file format in one place: the structs,
// their defaults, strict decoding and validation.
//
// A check's probe fields are exactly the Kubernetes Probe fields (the
// kubelet's core/v1.Probe, declared again in Probe with the same JSON names,
// so that nothing here links k8s.io/api), so a readinessProbe body from a
// pod spec can be pasted under a check. Docker's start period and start interval
// and a few healthbridge fields sit beside them.
package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults. The probe defaults are the Kubernetes API's (core/v1 Probe
// defaulting); the start interval is Docker's --start-interval default.
const (
	DefaultListen            = ":8642"
	DefaultAdminListen       = "127.0.0.1:8643"
	DefaultFailureStatusCode = 503
	DefaultPeriodSeconds     = 10
	DefaultTimeoutSeconds    = 1
	DefaultSuccessThreshold  = 1
	DefaultFailureThreshold  = 3
	// DefaultStartIntervalSeconds is Docker's --start-interval default (5 s),
	// capped at the check's periodSeconds so a check never probes more slowly
	// while starting than after.
	DefaultStartIntervalSeconds = 5
)

// Config is a whole healthbridge configuration file.
type Config struct {
	// Listen is the address of the public health server, host:port.
	// Default ":8642" (a port apps rarely use, so the sidecar does not collide
	// with the app beside it on 8080).
	Listen string `json:"listen,omitempty"`
	// ShutdownDelaySeconds is how long, in seconds, healthbridge keeps serving
	// after SIGTERM while /readyz already fails, so load balancers notice
	// before the listener closes. Default 0.
	ShutdownDelaySeconds int32 `json:"shutdownDelaySeconds,omitempty"`
	// DrainDelaySeconds is how long, in seconds, readiness keeps passing
	// after SIGTERM before it starts failing: with Kubernetes' terminating
	// endpoints (KEP-1669) the endpoint is already out of rotation, and a
	// readiness failure at once is only alert noise. It counts within
	// shutdownDelaySeconds, which still bounds the whole: at most that.
	// Default 0: readiness fails at once.
	DrainDelaySeconds int32 `json:"drainDelaySeconds,omitempty"`
	// ExposeOutput shows probe output in HTTP bodies. Default false: output
	// may hold secrets, so bodies say "reason withheld" (as kube-apiserver);
	// it is always logged.
	ExposeOutput bool `json:"exposeOutput,omitempty"`
	// FailureStatusCode is the HTTP status of a failing endpoint, 400-599.
	// Default 503; some load balancers want 500.
	FailureStatusCode int `json:"failureStatusCode,omitempty"`
	// AdminListen is the address of the admin server, which takes pushed
	// reports for ttl checks (POST /checks/<name>/pass|warn|fail). Default
	// "127.0.0.1:8643"; it is only opened when a ttl check exists, and never
	// shares the public listener: whoever reaches the public port must not
	// be able to change health.
	AdminListen string `json:"adminListen,omitempty"`
	// ReloadEndpoint serves POST /-/reload on adminListen (opening it even
	// without a ttl check): reload the config file, as Prometheus's
	// --web.enable-lifecycle. Default false.
	ReloadEndpoint bool `json:"reloadEndpoint,omitempty"`
	// WatchConfig reloads the config file when its content changes,
	// checked every WatchConfigInterval (a hash of the content, not file
	// events: a Kubernetes ConfigMap volume is updated by swapping a
	// symlink). Default false.
	WatchConfig bool `json:"watchConfig,omitempty"`
	// AllowRemoteAdmin accepts an adminListen that is not a loopback
	// address (":8643", "0.0.0.0:8643", a pod IP). Default false: whoever
	// reaches the admin port can mark ttl checks passing, so it must be
	// said explicitly that the network around it is trusted.
	AllowRemoteAdmin bool `json:"allowRemoteAdmin,omitempty"`
	// GRPCListen, when set, serves grpc.health.v1.Health (Check, Watch,
	// List) on this address, host:port: "" is the overall verdict,
	// liveness, readiness and startup the role verdicts, and each check's
	// name that check alone. Default "": off.
	GRPCListen string `json:"grpcListen,omitempty"`
	// GRPCServices maps further service names to one of those, so that a
	// real service name ("my.pkg.Service") can be answered, e.g.
	// {"my.pkg.Service": readiness}.
	GRPCServices map[string]string `json:"grpcServices,omitempty"`
	// GRPCTLS, when set, serves gRPC over TLS (with clientCAFile: mTLS).
	GRPCTLS *ServerTLS `json:"grpcTLS,omitempty"`
	// Command is the child `healthbridge run` starts when no command
	// follows "--" on its command line (argv, no shell).
	Command []string `json:"command,omitempty"`
	// RestartPolicy is what `healthbridge run` does when its child exits
	// by itself, in Kubernetes' words: Never (default: healthbridge exits
	// with the child's code, as tini), OnFailure (restart it after a
	// non-zero exit) or Always (restart it).
	RestartPolicy string `json:"restartPolicy,omitempty"`
	// OnLivenessFailure is what `healthbridge run` does when the liveness
	// verdict fails (after thresholds; startup checks gate it): none
	// (default: report only, as Docker), restart (stop and start the
	// child again) or exit (stop the child and exit with
	// ExitLivenessFailed, so the orchestrator restarts the container).
	OnLivenessFailure string `json:"onLivenessFailure,omitempty"`
	// TerminationGracePeriodSeconds is how long `healthbridge run` waits,
	// after sending its child SIGTERM, before it kills the child's process
	// group (Kubernetes' name for the same wait). Default 30.
	TerminationGracePeriodSeconds *int32 `json:"terminationGracePeriodSeconds,omitempty"`
	// Notify lists webhooks called on every check state change.
	Notify []NotifyWebhook `json:"notify,omitempty"`
	// Agent, when set, serves HAProxy's agent-check protocol.
	Agent *AgentConfig `json:"agent,omitempty"`
	// Checks are the probes to run. At least one.
	Checks []Check `json:"checks"`
}

// ServerTLS is a TLS server's certificate, and the CA bundle its clients'
// certificates must chain to for mTLS.
type ServerTLS struct {
	// CertFile and KeyFile are the server's certificate and key (PEM).
	// Required.
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
	// ClientCAFile, when set, requires and verifies client certificates.
	ClientCAFile string `json:"clientCAFile,omitempty"`
}

// AgentConfig is the HAProxy agent-check listener: HAProxy connects,
// healthbridge writes one line ("up ready", "down", "drain") and closes.
type AgentConfig struct {
	// Listen is the agent's address, host:port. Required.
	Listen string `json:"listen"`
	// Role is the endpoint whose verdict the agent reports; default
	// readiness (the agent answers "up" exactly when /readyz answers 200).
	Role Role `json:"role,omitempty"`
	// WarnWeightPercent, when 1-100, is the weight reported while the role
	// passes but a check's last run failed below its threshold (or a ttl
	// check reported warn), e.g. 50 for "50%"; 100% is reported otherwise.
	// Default 0: no weight is ever reported.
	WarnWeightPercent int `json:"warnWeightPercent,omitempty"`
}

// Check is one named probe with its schedule, thresholds and roles.
//
// The embedded Probe (the kubelet's core/v1.Probe) contributes exec,
// tcpSocket, initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold,
// failureThreshold and terminationGracePeriodSeconds (accepted for
// paste-compatibility and ignored: healthbridge restarts nothing). All
// durations are whole seconds, as in Kubernetes.
type Check struct {
	// Name identifies the check in paths (/readyz/<name>), logs and metrics:
	// letters, digits, '-', '_' and '.'; unique.
	Name string `json:"name"`
	// Roles says which endpoints the check gates. Default [liveness, readiness].
	// A startup check may have no other role.
	Roles []Role `json:"roles,omitempty"`

	Probe `json:",inline"`

	// StartPeriodSeconds is Docker's --start-period: while the check is still
	// starting and within this many seconds of healthbridge's start, failures
	// are not counted. Default 0.
	StartPeriodSeconds int32 `json:"startPeriodSeconds,omitempty"`
	// StartIntervalSeconds is Docker's --start-interval: the period used
	// during the start period. Default 5, capped at periodSeconds.
	StartIntervalSeconds int32 `json:"startIntervalSeconds,omitempty"`
	// StartingExitCode, for exec checks, is an exit code meaning "working but
	// not ready yet": Docker's original rule (the first HEALTHCHECK design) with 2. While the
	// check is starting such a run is not counted; afterwards it is a failure.
	// Default 0: off, every non-zero exit is a failure (modern Docker).
	StartingExitCode int32 `json:"startingExitCode,omitempty"`

	// HTTPGet is the kubelet's httpGet probe plus TLS options. It is the
	// kubelet's httpGet field.
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
	// GRPC is the kubelet's gRPC probe, grpc.health.v1.Health/Check, plus a
	// host and optional TLS. It is the kubelet's grpc field.
	GRPC *GRPCAction `json:"grpc,omitempty"`
	// KubernetesPod reads this pod's container readiness from the API
	// server (what http-healthcheck-sidecar did).
	KubernetesPod *KubernetesPodAction `json:"kubernetesPod,omitempty"`
	// Rundir reads an application's run-dir state files (docs/rundir.md).
	Rundir *RundirAction `json:"rundir,omitempty"`
	// TTL is a push check: the application reports, healthbridge expires.
	TTL *TTLAction `json:"ttl,omitempty"`
	// DNS resolves a name (internal/probe/dns).
	DNS *DNSAction `json:"dns,omitempty"`
	// UDP sends a datagram and expects a reply (internal/probe/udp).
	UDP *UDPAction `json:"udp,omitempty"`
	// File passes while a file exists (and, with maxAgeSeconds, was
	// modified recently): the heartbeat file a worker touches
	// (internal/probe/file).
	File *FileAction `json:"file,omitempty"`

	// PeriodOverride and TimeoutOverride, when > 0, replace periodSeconds
	// and timeoutSeconds with durations finer than a second. They are not
	// part of the file format: only the exechealthz drop-in sets them, as
	// exechealthz's -period and -latency take any Go duration.
	PeriodOverride  time.Duration `json:"-"`
	TimeoutOverride time.Duration `json:"-"`
}

// HTTPGetAction is an httpGet check: the kubelet's HTTPGetAction (path,
// port, host, scheme, httpHeaders; host defaults to 127.0.0.1) plus TLS
// options, which the kubelet lacks.
type HTTPGetAction struct {
	KubeHTTPGetAction `json:",inline"`
	// TLS, for scheme HTTPS, verifies the server (with caFile, serverName)
	// and may present a client certificate (certFile, keyFile); with
	// insecureSkipVerify: true it only does the latter. Default (no tls):
	// the certificate is not verified, as the kubelet.
	TLS *TLS `json:"tls,omitempty"`
	// Method is the request method; default GET, the kubelet's only one.
	Method string `json:"method,omitempty"`
	// Body is sent as the request body (for a POST, say); default none.
	Body string `json:"body,omitempty"`
	// Expect, when set, judges the response by these expectations instead
	// of the kubelet's rule (any status 200-399 passes); unset, the
	// kubelet's rule holds.
	Expect *HTTPExpect `json:"expect,omitempty"`
}

// HTTPExpect is what an httpGet check's response must show beyond the
// kubelet's status rule, as blackbox_exporter's http prober
// (valid_status_codes, fail_if_body_(not_)matches_regexp,
// fail_if_header_not_matches) and Gatus' conditions judge. Every set
// expectation must hold.
type HTTPExpect struct {
	// Status lists the passing status codes, each a code (200) or an
	// inclusive range ("200-299"); default 200-399, the kubelet's.
	Status StatusCodes `json:"status,omitempty"`
	// BodyRegex must match somewhere in the body (RE2 syntax).
	BodyRegex string `json:"bodyRegex,omitempty"`
	// BodyNotRegex must not match anywhere in the body.
	BodyNotRegex string `json:"bodyNotRegex,omitempty"`
	// JSON are values the body, read as JSON, must hold.
	JSON []JSONExpect `json:"json,omitempty"`
	// Headers are response headers that must match.
	Headers []HeaderExpect `json:"headers,omitempty"`
	// MaxResponseMs bounds the time from sending the request to the end of
	// the body, in milliseconds; 0: no bound beyond timeoutSeconds.
	MaxResponseMs int32 `json:"maxResponseMs,omitempty"`
	// MaxBodyBytes is how much of the body the expectations read: default
	// 65536 (the kubelet reads 10 KiB, too little for a JSON health
	// document), at most 10 MiB. A longer body fails the check.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
}

// JSONExpect is one value an httpGet response body must hold.
type JSONExpect struct {
	// Path selects the value: object keys and array indexes joined by
	// dots ("status", "components.db.status", "checks.0.state"), as the
	// gjson library reads a path.
	Path string `json:"path"`
	// Equals is the value the path must hold: a string, number, boolean
	// or null, compared as JSON values ("UP" is not "up"; 1 is 1.0).
	// Unset: the path must exist.
	Equals any `json:"equals,omitempty"`
}

// HeaderExpect is one response header an httpGet response must carry.
type HeaderExpect struct {
	// Name is the header's name (any case).
	Name string `json:"name"`
	// Regex must match the header's value (several values joined by ", ").
	Regex string `json:"regex"`
}

// StatusCodes are the passing HTTP status codes of an expect block: each
// a code (200) or an inclusive range ("200-299").
type StatusCodes []StatusRange

// StatusRange is an inclusive range of HTTP status codes; a single code
// has Min == Max.
type StatusRange struct{ Min, Max int }

// UnmarshalJSON reads a code (200, "200") or a range ("200-299").
func (r *StatusRange) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	lo, hi, isRange := strings.Cut(s, "-")
	var err error
	if r.Min, err = strconv.Atoi(strings.TrimSpace(lo)); err != nil {
		return fmt.Errorf("want a code (200) or a range (\"200-299\"), got %s", b)
	}
	r.Max = r.Min
	if isRange {
		if r.Max, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
			return fmt.Errorf("want a code (200) or a range (\"200-299\"), got %s", b)
		}
	}
	return nil
}

// MarshalJSON writes a code or a range, as UnmarshalJSON reads it.
func (r StatusRange) MarshalJSON() ([]byte, error) {
	if r.Min == r.Max {
		return []byte(strconv.Itoa(r.Min)), nil
	}
	return []byte(fmt.Sprintf(`"%d-%d"`, r.Min, r.Max)), nil
}

// Has reports whether code is in one of the ranges.
func (sc StatusCodes) Has(code int) bool {
	for _, r := range sc {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

// GRPCAction is a grpc check: the fields of the kubelet's GRPCAction (port,
// service) plus host and TLS, which the kubelet lacks.
type GRPCAction struct {
	// Port is the gRPC server's port, 1-65535. Required.
	Port int32 `json:"port"`
	// Host defaults to 127.0.0.1.
	Host string `json:"host,omitempty"`
	// Service is sent in HealthCheckRequest.service; default "" (the
	// server's overall health), as the kubelet.
	Service *string `json:"service,omitempty"`
	// TLS, when set, dials with TLS instead of plaintext (the kubelet only
	// speaks plaintext).
	TLS *TLS `json:"tls,omitempty"`
}

// TLS configures a probe's TLS client (grpc.tls, httpGet.tls): the
// server's certificate is verified unless InsecureSkipVerify.
type TLS struct {
	// InsecureSkipVerify skips verification of the server's certificate.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	// CAFile is a PEM bundle to verify the server with; default the system
	// roots.
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are a client certificate and key (PEM), for mTLS.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// ServerName overrides the name verified in the server's certificate.
	ServerName string `json:"serverName,omitempty"`
	// MinValidity, when set, makes a passing check warn while the
	// earliest expiry among the certificates the server presents is less
	// than this far away ("168h"), as blackbox_exporter's
	// probe_ssl_earliest_cert_expiry alerts: a warning, never a failure,
	// since every replica shares the certificate.
	MinValidity Duration `json:"minValidity,omitempty"`
}

// Duration is a length of time written as Go writes one ("168h",
// "90m", "1h30m"). Zero is unset.
type Duration struct{ time.Duration }

// UnmarshalText reads a Go duration; a negative one is an error.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as \"168h\" or \"90m\", got %q", b)
	}
	if v < 0 {
		return fmt.Errorf("must not be negative, got %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes d as UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// KubernetesPodAction is a kubernetesPod check: the readiness the kubelet
// reported for this pod's containers, read from a watch of the one pod.
type KubernetesPodAction struct {
	// Container, when set, checks only this container's ready flag (a
	// container or a native sidecar, i.e. a restartable init container).
	// Default: every container of the pod except healthbridge's own, and
	// the pod must not be terminating.
	Container string `json:"container,omitempty"`
	// Pod is the pod's name; default $HOSTNAME, as http-healthcheck-sidecar.
	Pod string `json:"pod,omitempty"`
	// Namespace defaults to the service-account namespace file, then
	// $POD_NAMESPACE, then the kubeconfig context's namespace.
	Namespace string `json:"namespace,omitempty"`
	// SelfContainer is healthbridge's own container, left out when
	// Container is empty; default $HEALTHBRIDGE_CONTAINER_NAME.
	SelfContainer string `json:"selfContainer,omitempty"`
	// MaxStalenessSeconds is how long the last known status may be used
	// while the API server cannot be reached; after that the check fails
	// and says why. Default 60.
	MaxStalenessSeconds int32 `json:"maxStalenessSeconds,omitempty"`
}

// DefaultMaxStalenessSeconds is kubernetesPod's maxStalenessSeconds default.
const DefaultMaxStalenessSeconds = 60

// RundirAction is a rundir check: <path>/<unit>/pid and error, as written
// by the health package, the Python module or the liveness tool's own scripts.
type RundirAction struct {
	// Path is the run directory; default /run/<HOSTNAME> (as the liveness tool), or
	// $HEALTHBRIDGE_RUNDIR.
	Path string `json:"path,omitempty"`
	// Unit is the application's unit name, a single path element. Required.
	Unit string `json:"unit"`
	// CheckPid checks that the pid is a live, non-zombie process. Default
	// true; turn it off when healthbridge does not share the application's
	// PID namespace (no shareProcessNamespace).
	CheckPid *bool `json:"checkPid,omitempty"`
	// MaxAgeSeconds, when > 0, fails a state not rewritten within this many
	// seconds: the application's set(0) becomes a heartbeat. Default 0: off.
	MaxAgeSeconds int32 `json:"maxAgeSeconds,omitempty"`
}

// TTLAction is a push check, as Consul's TTL checks: the application POSTs
// /checks/<name>/pass|warn|fail to adminListen; without a report for
// Seconds the check fails with "TTL expired". Until the first report it
// fails too. For ttl checks periodSeconds defaults to 1 and
// failureThreshold to 1, so expiry is seen within a second, as Consul.
type TTLAction struct {
	// Seconds is the time to live of a report. Required, >= 1.
	Seconds int32 `json:"seconds"`
}

// Rules are the probe kinds' part of the config's rules. The kinds live in
// their own packages, which import this one, so internal/probe/kinds
// supplies them (kinds.Rules); nil means none (a test of the generic rules).
type Rules interface {
	// Names lists every kind's config field, in the kind list's order.
	Names() []string
	// Set lists the kind fields set on c, in the same order.
	Set(c *Check) []string
	// Defaults fills in the defaults of the kinds set on c.
	Defaults(c *Check)
	// Validate returns the problems of the kinds set on c, with paths
	// under path ("checks[2]").
	Validate(c *Check, path string) []error
	// Push reports whether c is of a push kind (reports arrive on
	// adminListen).
	Push(c *Check) bool
}

// HasRole reports whether r is one of c's roles.
func (c *Check) HasRole(r Role) bool { return slices.Contains(c.Roles, r) }

// Period is periodSeconds as a duration, or PeriodOverride when set.
func (c *Check) Period() time.Duration {
	if c.PeriodOverride > 0 {
		return c.PeriodOverride
	}
	return seconds(c.PeriodSeconds)
}

// Timeout is timeoutSeconds as a duration, or TimeoutOverride when set.
func (c *Check) Timeout() time.Duration {
	if c.TimeoutOverride > 0 {
		return c.TimeoutOverride
	}
	return seconds(c.TimeoutSeconds)
}

// InitialDelay is initialDelaySeconds as a duration.
func (c *Check) InitialDelay() time.Duration { return seconds(c.InitialDelaySeconds) }

// StartPeriod is startPeriodSeconds as a duration.
func (c *Check) StartPeriod() time.Duration { return seconds(c.StartPeriodSeconds) }

// StartInterval is startIntervalSeconds as a duration.
func (c *Check) StartInterval() time.Duration { return seconds(c.StartIntervalSeconds) }

// WatchConfigInterval is how often watchConfig reads the config file.
const WatchConfigInterval = 5 * time.Second

// HasAdmin reports whether the admin server runs: for push checks' reports
// or for POST /-/reload.
func (c *Config) HasAdmin(r Rules) bool { return c.ReloadEndpoint || c.HasPush(r) }

// HasPush reports whether any check is of a push kind.
func (c *Config) HasPush(r Rules) bool {
	for i := range c.Checks {
		if r != nil && r.Push(&c.Checks[i]) {
			return true
		}
	}
	return false
}

// ShutdownDelay is shutdownDelaySeconds as a duration.
func (c *Config) ShutdownDelay() time.Duration { return seconds(c.ShutdownDelaySeconds) }

// Restart policies (restartPolicy) and liveness actions
// (onLivenessFailure).
const (
	RestartNever     = "Never"
	RestartOnFailure = "OnFailure"
	RestartAlways    = "Always"
	LivenessNone     = "none"
	LivenessRestart  = "restart"
	LivenessExit     = "exit"
)

// ExitLivenessFailed is `healthbridge run`'s exit code after
// onLivenessFailure: exit stopped the child: 75, EX_TEMPFAIL ("try again"),
// which --restart=on-failure, Compose's restart: and systemd's Restart=
// all restart.
const ExitLivenessFailed = 75

// DefaultTerminationGracePeriodSeconds is terminationGracePeriodSeconds'
// default, the Kubernetes default.
const DefaultTerminationGracePeriodSeconds = 30

// TerminationGracePeriod is terminationGracePeriodSeconds as a duration.
func (c *Config) TerminationGracePeriod() time.Duration {
	if c.TerminationGracePeriodSeconds == nil {
		return seconds(DefaultTerminationGracePeriodSeconds)
	}
	return seconds(*c.TerminationGracePeriodSeconds)
}

// DrainDelay is drainDelaySeconds as a duration.
func (c *Config) DrainDelay() time.Duration { return seconds(c.DrainDelaySeconds) }

func seconds(n int32) time.Duration { return time.Duration(n) * time.Second }

// SetDefaults fills every unset field with its default, the kinds' own
// through r. It is idempotent and leaves invalid values for Validate to
// report.
func (c *Config) SetDefaults(r Rules) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.FailureStatusCode == 0 {
		c.FailureStatusCode = DefaultFailureStatusCode
	}
	if c.AdminListen == "" {
		c.AdminListen = DefaultAdminListen
	}
	for i := range c.Notify {
		n := &c.Notify[i]
		if n.Format == "" {
			n.Format = "json"
		}
		if n.TimeoutSeconds == 0 {
			n.TimeoutSeconds = 5
		}
		if n.MaxAttempts == 0 {
			n.MaxAttempts = 5
		}
	}
	if c.RestartPolicy == "" {
		c.RestartPolicy = RestartNever
	}
	if c.OnLivenessFailure == "" {
		c.OnLivenessFailure = LivenessNone
	}
	if c.Agent != nil && c.Agent.Role == RoleUnknown {
		c.Agent.Role = RoleReadiness
	}
	for i := range c.Checks {
		c.Checks[i].SetDefaults(r)
	}
}

// SetDefaults fills the check's unset fields: its kind's defaults first
// (through r; they may set check-level fields, as ttl's periodSeconds 1),
// then the Kubernetes and Docker defaults.
func (c *Check) SetDefaults(r Rules) {
	if len(c.Roles) == 0 {
		c.Roles = []Role{RoleLiveness, RoleReadiness}
	}
	if r != nil {
		r.Defaults(c)
	}
	if c.PeriodSeconds == 0 {
		c.PeriodSeconds = DefaultPeriodSeconds
	}
	if c.TimeoutSeconds == 0 {
		c.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if c.SuccessThreshold == 0 {
		c.SuccessThreshold = DefaultSuccessThreshold
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.StartIntervalSeconds == 0 {
		c.StartIntervalSeconds = min(DefaultStartIntervalSeconds, max(c.PeriodSeconds, 1))
	}
}

// DefaultHost is the host httpGet and tcpSocket probes use when none is set:
// a sidecar shares the pod's network namespace, so its neighbour is loopback.
const DefaultHost = "127.0.0.1"

// HostPort joins host (DefaultHost when empty) and port for dialling.
func HostPort(host string, port int) string {
	if host == "" {
		host = DefaultHost
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Errorf returns an error for the field at path, formatted as
// "path: message", the shape every config error has.
func Errorf(path, format string, args ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

// DNSAction is a dns check: resolve Name within the timeout; success when
// the answer holds a record of Type (and, with Expect, that value).
type DNSAction struct {
	// Name is the name to resolve. Required.
	Name string `json:"name"`
	// Server, host:port, is the one server asked (UDP, then TCP for a
	// truncated answer); default the system's resolver.
	Server string `json:"server,omitempty"`
	// Type is the record type: A (default), AAAA, CNAME, MX, NS or TXT.
	Type string `json:"type,omitempty"`
	// Expect, when set, must equal one answer: an address for A and AAAA,
	// a name for CNAME, MX and NS (no case, final dot optional), a text for
	// TXT.
	Expect string `json:"expect,omitempty"`
}

// UDPAction is a udp check: send Send to host:port, expect a reply within
// the timeout (matching Expect when set).
type UDPAction struct {
	// Port is the service's UDP port, 1-65535. Required.
	Port int32 `json:"port"`
	// Host defaults to 127.0.0.1.
	Host string `json:"host,omitempty"`
	// Send is the datagram sent, as text (YAML and JSON strings are
	// UTF-8); default empty. For bytes that are not UTF-8 use SendHex.
	Send string `json:"send,omitempty"`
	// SendHex is the datagram sent, as hexadecimal digits (two per byte,
	// e.g. "ffffffff54536f7572636520456e67696e6520517565727900", the
	// Source Engine query); an alternative to Send, not both.
	SendHex string `json:"sendHex,omitempty"`
	// Expect, when set, is a regular expression (Go's RE2 syntax) the
	// reply must match; default any reply.
	Expect string `json:"expect,omitempty"`
}

// FileAction is a file check: the file at Path must exist, and, with
// MaxAgeSeconds, have been modified within that many seconds.
type FileAction struct {
	// Path is the file (or directory); absolute. Required.
	Path string `json:"path"`
	// MaxAgeSeconds, when > 0, fails a file last modified longer ago than
	// this: a worker that touches its heartbeat file and then hangs.
	MaxAgeSeconds int32 `json:"maxAgeSeconds,omitempty"`
}

// NotifyWebhook is one webhook healthbridge POSTs each check state change
// to (internal/notify).
type NotifyWebhook struct {
	// URL is where to POST, http or https. Required.
	URL string `json:"url"`
	// Format is "json" (default: the same fields as an /events event) or
	// "text" ({"text": "..."}, what Slack and Mattermost incoming webhooks
	// take).
	Format string `json:"format,omitempty"`
	// Checks, when set, limits the webhook to these checks.
	Checks []string `json:"checks,omitempty"`
	// Roles, when set, limits it to checks with one of these roles.
	Roles []Role `json:"roles,omitempty"`
	// Headers are sent with each request (an auth token, say); a value can
	// come from a file or an environment variable, and is never logged.
	Headers []NotifyHeader `json:"headers,omitempty"`
	// TimeoutSeconds bounds each attempt. Default 5.
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
	// MaxAttempts is how many times a delivery is tried, with exponential
	// backoff (1 s, 2 s, 4 s, … at most 30 s) between. Default 5.
	MaxAttempts int32 `json:"maxAttempts,omitempty"`
}

// NotifyHeader is a request header of a webhook: exactly one of Value,
// ValueFromFile and ValueFromEnv.
type NotifyHeader struct {
	Name          string `json:"name"`
	Value         string `json:"value,omitempty"`
	ValueFromFile string `json:"valueFromFile,omitempty"`
	ValueFromEnv  string `json:"valueFromEnv,omitempty"`
}

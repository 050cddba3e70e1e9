package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Probe holds the fields of the kubelet's Probe (k8s.io/api core/v1.Probe)
// that are not a probe kind of their own in Check, with the same JSON
// names and types, so that a readinessProbe body from a pod spec pastes
// under a check. It is declared here rather than embedding core/v1.Probe
// so that the config, and every binary that reads it, does not link
// k8s.io/api (about 10 MB of a static binary); config_test proves that
// every field of core/v1.Probe decodes to the same values.
//
// The kubelet's httpGet and grpc fields are Check.HTTPGet and Check.GRPC,
// which add TLS and a host.
type Probe struct {
	// Exec runs a command; exit 0 is success (the kubelet's ExecAction).
	Exec *ExecAction `json:"exec,omitempty"`
	// TCPSocket succeeds when a TCP connection opens (the kubelet's
	// TCPSocketAction).
	TCPSocket *TCPSocketAction `json:"tcpSocket,omitempty"`

	// InitialDelaySeconds is the delay after start before the first probe.
	// Default 0.
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	// TimeoutSeconds is each probe's deadline; a probe still running then
	// is a failure. Default 1, minimum 1.
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
	// PeriodSeconds is the time between probe starts. Default 10, minimum 1.
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`
	// SuccessThreshold is how many consecutive successes make a failing
	// check pass. Default 1.
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
	// FailureThreshold is how many consecutive failures make a passing
	// check fail. Default 3.
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
	// TerminationGracePeriodSeconds is the kubelet's per-probe grace
	// period, accepted so that a pod spec's probe pastes; healthbridge
	// kills nothing on a probe's behalf, so it is ignored.
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

// ExecAction is the kubelet's ExecAction: a command run without a shell.
type ExecAction struct {
	// Command is argv; argv[0] is looked up on $PATH.
	Command []string `json:"command,omitempty"`
}

// TCPSocketAction is the kubelet's TCPSocketAction.
type TCPSocketAction struct {
	// Port is a number 1-65535 (a numeric string is accepted; a named
	// port is refused: a sidecar does not know the container's ports).
	Port IntOrString `json:"port"`
	// Host defaults to 127.0.0.1.
	Host string `json:"host,omitempty"`

	// The rest are healthbridge's, beyond the kubelet's connect-only
	// check: a conversation with the service, as HAProxy's tcp-check
	// send/expect and blackbox_exporter's tcp query_response.

	// Send is written once connected, as text (YAML's double-quoted
	// escapes give "\r\n"); SendHex gives bytes as hexadecimal digits
	// instead. Not both.
	Send    string `json:"send,omitempty"`
	SendHex string `json:"sendHex,omitempty"`
	// Expect is a regular expression (RE2) the reply must match, read
	// until it does, the server closes, 64 KiB have come or the timeout.
	Expect string `json:"expect,omitempty"`
	// Steps is a longer conversation, in order: each step sends (send or
	// sendHex) or expects (expect). Instead of send and expect.
	Steps []TCPStep `json:"steps,omitempty"`
	// TLS, when set, speaks TLS once connected (implicit TLS, as SMTPS,
	// IMAPS or Redis with tls-port); the conversation runs inside it.
	TLS *TLS `json:"tls,omitempty"`
}

// TCPStep is one step of a tcpSocket conversation: exactly one of Send,
// SendHex and Expect.
type TCPStep struct {
	Send    string `json:"send,omitempty"`
	SendHex string `json:"sendHex,omitempty"`
	Expect  string `json:"expect,omitempty"`
}

// KubeHTTPGetAction is the kubelet's HTTPGetAction, with the same JSON
// names (embedded in HTTPGetAction, which adds TLS).
type KubeHTTPGetAction struct {
	// Path is the request path; default "/".
	Path string `json:"path,omitempty"`
	// Port is a number 1-65535, as TCPSocketAction.Port.
	Port IntOrString `json:"port"`
	// Host defaults to 127.0.0.1; a Host header overrides the header only.
	Host string `json:"host,omitempty"`
	// Scheme is HTTP or HTTPS; default HTTP.
	Scheme URIScheme `json:"scheme,omitempty"`
	// HTTPHeaders are sent with the request; an empty value removes a
	// default header (the kubelet's rule).
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// URIScheme is an httpGet scheme, as the kubelet's.
type URIScheme string

// The httpGet schemes.
const (
	URISchemeHTTP  URIScheme = "HTTP"
	URISchemeHTTPS URIScheme = "HTTPS"
)

// HTTPHeader is one request header of an httpGet check.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// IntOrString is a port that may be written as a number or a string, as
// apimachinery's intstr.IntOrString (same JSON forms: 8080 or "8080").
type IntOrString struct {
	// IsString says which of IntVal and StrVal holds the value.
	IsString bool
	IntVal   int32
	StrVal   string
}

// FromInt is an IntOrString holding n.
func FromInt(n int) IntOrString { return IntOrString{IntVal: int32(n)} }

// FromString is an IntOrString holding s.
func FromString(s string) IntOrString { return IntOrString{IsString: true, StrVal: s} }

// UnmarshalJSON accepts a JSON integer (32-bit) or string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = FromString(s)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*v = IntOrString{}
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return fmt.Errorf("must be an integer or a string, not %s", b)
	}
	*v = FromInt(int(f))
	return nil
}

// MarshalJSON writes a number or a string, as it was given.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return []byte(strconv.Itoa(int(v.IntVal))), nil
}

// String is the port as written.
func (v IntOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// IntValue is the value as an int; a string that is not a number is 0
// (as intstr's IntValue).
func (v IntOrString) IntValue() int {
	if v.IsString {
		n, _ := strconv.Atoi(v.StrVal)
		return n
	}
	return int(v.IntVal)
}

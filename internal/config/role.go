package config

import "fmt"

// Role says which endpoint a check gates. The zero value is RoleUnknown.
type Role int

const (
	// RoleUnknown is the zero value; never valid in a config.
	RoleUnknown Role = iota
	// RoleLiveness: the check gates /livez. As the kubelet's initial liveness
	// is success, a starting check passes /livez.
	RoleLiveness
	// RoleReadiness: the check gates /readyz. A starting check fails it.
	RoleReadiness
	// RoleStartup: the check gates /startupz, and liveness and readiness
	// checks do not run until every startup check is healthy (kubelet).
	RoleStartup
)

// Roles lists the valid roles.
func Roles() []Role { return []Role{RoleLiveness, RoleReadiness, RoleStartup} }

// String returns the role's config spelling: liveness, readiness, startup.
func (r Role) String() string {
	switch r {
	case RoleLiveness:
		return "liveness"
	case RoleReadiness:
		return "readiness"
	case RoleStartup:
		return "startup"
	case RoleUnknown:
		return "unknown"
	default:
		return fmt.Sprintf("role(%d)", int(r))
	}
}

// ParseRole parses a role's config spelling.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if r.String() == s {
			return r, nil
		}
	}
	return RoleUnknown, fmt.Errorf("unknown role %q: must be liveness, readiness or startup", s)
}

// MarshalText encodes r as its String form.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses r from its String form; other text is an error.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

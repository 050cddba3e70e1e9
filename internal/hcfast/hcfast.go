// Package hcfast is the small HEALTHCHECK of healthbridge's images
// (cmd/healthbridge-healthcheck): it asks the healthbridge server of the
// container for its verdict as `healthbridge healthcheck` does, from a
// binary of about 1.5 MB instead of the full program.
//
// Why a second implementation: Docker runs an image's HEALTHCHECK as a new
// process every interval, inside the container's memory cgroup. Every run
// maps the program's file again, and file pages used twice move to the
// active list, which the container's working set (what the kubelet,
// `docker stats` and memory limits count) includes. Measured by bench/idle,
// the whole executable ends up counted: a HEALTHCHECK running the 8 MB
// healthbridge costs about 7 MB of working set, one running this program
// about 1.5 MB. So this program links no net/http, no YAML library and no
// flag package — only the runtime, os, syscall, strconv, time and
// net/netip.
//
// It handles the common case exactly and hands everything else to the full
// program: ReadListen reads the config's top-level `listen:` only when the
// file is plain block YAML whose meaning it is sure of (FuzzReadListen
// checks every address it returns against the YAML library's reading), and
// the caller execs `healthbridge healthcheck` with the same arguments
// whenever it says it cannot.
package hcfast

import (
	"bytes"
	"errors"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultListen is the listen address of a config that sets none (the
// config package's DefaultListen; a test keeps the two equal).
const DefaultListen = ":8642"

// ReadListen returns the address a client in the same network namespace
// reaches the public listener of the config file data at: its top-level
// listen field (DefaultListen when absent) with an unspecified host (":8642",
// "0.0.0.0:…", "[::]:…") replaced by 127.0.0.1, as oneshot.ListenOf
// computes it. ok is false when it cannot be sure of that reading — JSON or
// flow style, several documents, directives, anchors, aliases, tags, merge
// keys, complex keys, quoted keys, escapes, multi-line values, a host
// name, a zone, a port outside 1-65535 — and the caller must then ask the
// full program.
func ReadListen(data []byte) (addr netip.AddrPort, ok bool) {
	value, found, ok := listenValue(data)
	if !ok {
		return netip.AddrPort{}, false
	}
	if !found {
		value = DefaultListen
	}
	return parseAddr(value)
}

// listenValue finds the top-level `listen:` line of a block-style YAML
// mapping and returns its scalar value. found is false when the file has
// no such key; ok is false when the file is anything it cannot read with
// certainty.
func listenValue(data []byte) (value string, found, ok bool) {
	if len(data) > 1<<20 || bytes.IndexByte(data, 0) >= 0 || bytes.IndexByte(data, '\t') >= 0 || bytes.IndexByte(data, '\r') >= 0 {
		return "", false, false
	}
	lines := strings.Split(string(data), "\n")
	keys := 0
	for i, line := range lines {
		if t := strings.TrimLeft(line, " "); t == "" || t[0] == '#' {
			continue // blank or a comment
		}
		if line[0] == ' ' {
			if keys == 0 {
				return "", false, false // the document does not start at column 0
			}
			continue // inside a top-level key's value
		}
		keys++
		// A line at column 0 is a top-level key, in the one form read here:
		// an unquoted key of letters, digits and '_', '-', '.', then ':'.
		key, rest, hasColon := strings.Cut(line, ":")
		if !hasColon || !plainKey(key) || rest != "" && rest[0] != ' ' {
			return "", false, false
		}
		if key != "listen" {
			if strings.EqualFold(key, "listen") {
				return "", false, false // "Listen": the server refuses it; the YAML library's reading is another
			}
			continue
		}
		if found {
			return "", false, false // a repeated key
		}
		v, ok := scalar(rest)
		if !ok {
			return "", false, false
		}
		// A plain or quoted value may go on over indented lines.
		for _, next := range lines[i+1:] {
			t := strings.TrimLeft(next, " ")
			if t == "" || t[0] == '#' {
				continue
			}
			if next[0] == ' ' {
				return "", false, false
			}
			break
		}
		value, found = v, true
	}
	return value, found, true
}

// plainKey reports whether k is a key written without quotes, tags or
// indicators: letters, digits, '_', '-' and '.', starting with a letter.
func plainKey(k string) bool {
	if k == "" || !isLetter(k[0]) {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !isLetter(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// scalar reads the value after "listen:" on its line: a plain scalar made
// of the characters of an address, or one quoted with no escape in it, and
// then nothing but spaces and a comment.
func scalar(rest string) (string, bool) {
	s := strings.TrimLeft(rest, " ")
	var v, after string
	switch {
	case s == "" || s[0] == '#':
		return "", false // null: leave it to the full program
	case s[0] == '"' || s[0] == '\'':
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return "", false
		}
		v, after = s[1:1+end], s[2+end:]
		if strings.ContainsAny(v, `\"'`) {
			return "", false
		}
	default:
		// Plain: ":8642" or "127.0.0.1:8642" (a '[' would open a flow
		// sequence, so an IPv6 literal must be quoted).
		end := strings.IndexByte(s, ' ')
		if end < 0 {
			end = len(s)
		}
		v, after = s[:end], s[end:]
		if v[0] != ':' && !isDigit(v[0]) || !strings.Contains(v, ":") {
			return "", false
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; !isDigit(c) && c != '.' && c != ':' {
				return "", false
			}
		}
	}
	// Then nothing, or spaces and a comment.
	if after != "" {
		if after[0] != ' ' {
			return "", false
		}
		if t := strings.TrimLeft(after, " "); t != "" && t[0] != '#' {
			return "", false
		}
	}
	return v, true
}

// parseAddr turns a listen value into the address to ask, or reports false
// for anything but an IP literal (or none) and a port 1-65535.
func parseAddr(listen string) (netip.AddrPort, bool) {
	i := strings.LastIndexByte(listen, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	host, portText := listen[:i], listen[i+1:]
	if strings.HasPrefix(host, "[") != strings.HasSuffix(host, "]") {
		return netip.AddrPort{}, false
	}
	bracketed := strings.HasPrefix(host, "[")
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 || len(portText) > 5 || portText[0] == '+' {
		return netip.AddrPort{}, false
	}
	if host == "" {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port)), true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" || ip.Is4In6() || ip.Is6() != bracketed {
		return netip.AddrPort{}, false
	}
	if ip.IsUnspecified() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return netip.AddrPortFrom(ip, uint16(port)), true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// Ask sends GET /endpoint to addr over HTTP/1.1 with raw system calls
// (no net package: see the package doc) and returns the status line's
// code, or an error when no status line came within timeout. The timeout
// bounds the connect and each read (SO_SNDTIMEO, SO_RCVTIMEO), each given
// what is left of it.
func Ask(addr netip.AddrPort, endpoint string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	family, sa := syscall.AF_INET, syscall.Sockaddr(nil)
	if addr.Addr().Is4() {
		sa = &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer syscall.Close(fd)
	// No TIME_WAIT left behind, as the probes close (SO_LINGER 0).
	_ = syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
	left := func(opt int) error {
		d := time.Until(deadline)
		if d <= 0 {
			return errTimeout
		}
		tv := syscall.NsecToTimeval(d.Nanoseconds())
		return syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, opt, &tv)
	}
	if err := left(syscall.SO_SNDTIMEO); err != nil {
		return 0, err
	}
	for {
		err = syscall.Connect(fd, sa)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EINPROGRESS || err == syscall.EAGAIN {
		return 0, errTimeout
	}
	if err != nil {
		return 0, err
	}
	req := "GET /" + endpoint + " HTTP/1.1\r\nHost: " + addr.String() + "\r\nUser-Agent: healthbridge-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	for b := []byte(req); len(b) > 0; {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return 0, errTimeout
		}
		if err != nil {
			return 0, err
		}
		b = b[n:]
	}
	// The status line: "HTTP/1.1 200 OK\r\n", within the first 1 KiB.
	buf := make([]byte, 0, 1024)
	for {
		if i := strings.Index(string(buf), "\r\n"); i >= 0 {
			return statusCode(string(buf[:i]))
		}
		if len(buf) == cap(buf) {
			return 0, errors.New("no HTTP status line in the first 1 KiB")
		}
		if err := left(syscall.SO_RCVTIMEO); err != nil {
			return 0, err
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errTimeout
		case err != nil:
			return 0, err
		case n == 0:
			return 0, errors.New("the connection closed before a status line")
		}
		buf = buf[:len(buf)+n]
	}
}

var errTimeout = errors.New("timed out")

// statusCode reads the code of an HTTP/1.x status line.
func statusCode(line string) (int, error) {
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/1.") || err != nil || len(code) != 3 || n < 100 {
		return 0, errors.New("not an HTTP status line: " + strconv.Quote(line))
	}
	return n, nil
}

// Version and Commit are healthbridge's, as internal/probe's Version and
// Commit (a test keeps the defaults equal); deploy/release.sh sets both
// packages' with -ldflags -X. Unlike the full program, this one does not
// read the build information (runtime/debug would bring fmt and reflect:
// 0.2 MB, paid in every container's working set), so a build by `go install
// …@VERSION` shows the default.
var (
	Version = "0.1.0"
	Commit  = ""
)

// BuildInfo is the version line: "0.1.0 (commit 595f436, go1.26.8)", or
// without the commit when none was set.
func BuildInfo() string {
	if Commit == "" {
		return Version + " (" + runtime.Version() + ")"
	}
	return Version + " (commit " + Commit + ", " + runtime.Version() + ")"
}

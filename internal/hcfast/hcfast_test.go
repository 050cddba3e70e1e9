package hcfast

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/oneshot"
	"github.com/healthbridge/healthbridge/internal/probe"
)

func TestDefaultListenIsTheConfigs(t *testing.T) {
	if DefaultListen != config.DefaultListen {
		t.Fatalf("hcfast.DefaultListen %q, config.DefaultListen %q", DefaultListen, config.DefaultListen)
	}
}

// TestVersionIsProbes: the same version as the full program, and the
// same version line when the commit is set (as deploy/release.sh does).
func TestVersionIsProbes(t *testing.T) {
	if Version != probe.Version {
		t.Fatalf("hcfast.Version %q, probe.Version %q", Version, probe.Version)
	}
	defer func(c, pc string) { Commit, probe.Commit = c, pc }(Commit, probe.Commit)
	Commit, probe.Commit = "595f436", "595f436"
	if BuildInfo() != probe.BuildInfo() {
		t.Fatalf("hcfast.BuildInfo() %q, probe.BuildInfo() %q", BuildInfo(), probe.BuildInfo())
	}
}

// readListenCases are config files and what ReadListen makes of them: an
// address, or "" for "ask the full program".
var readListenCases = []struct{ file, want string }{
	{"", "127.0.0.1:8642"},
	{"checks:\n  - name: a\n    exec: {command: [\"true\"]}\n", "127.0.0.1:8642"},
	{"listen: \":9000\"\n", "127.0.0.1:9000"},
	{"listen: :9000\n", "127.0.0.1:9000"},
	{"listen: '127.0.0.2:9000' # the pod's\nchecks: []\n", "127.0.0.2:9000"},
	{"# sidecar\nlisten: 0.0.0.0:8080\nadminListen: 127.0.0.1:8643\n", "127.0.0.1:8080"},
	{"listen: \"[::1]:9000\"\n", "[::1]:9000"},
	{"listen: \"[::]:9000\"\n", "127.0.0.1:9000"},
	{"checks:\n  - name: x\n    listen: \":1\"\nlisten: \":2\"\n", "127.0.0.1:2"},
	// Everything else goes to the full program.
	{"{\"listen\": \":9000\"}\n", ""},
	{"listen: localhost:9000\n", ""},
	{"listen: \":0\"\n", ""},
	{"listen: \":70000\"\n", ""},
	{"listen:\n", ""},
	{"listen: \":1\"\nlisten: \":2\"\n", ""},
	{"listen: \":1\n  2\"\n", ""},
	{"listen: :1\n  :2\n", ""},
	{"---\nlisten: \":1\"\n", ""},
	{"<<: *base\n", ""},
	{"\"listen\": \":1\"\n", ""},
	{"listen: \"\\x3a1\"\n", ""},
	{"listen: &a \":1\"\n", ""},
	{"listen: !!str :1\n", ""},
	{"listen: \":1\"\r\n", ""},
	{" listen: \":1\"\n", ""},
	{"Listen: \":1\"\n", ""},
	{"LISTEN: \":1\"\nlisten: \":2\"\n", ""},
	{"  # comment\nlisten: \":1\"\n", "127.0.0.1:1"},
	{"listen: \"[fe80::1%eth0]:1\"\n", ""},
	{"listen: [::1]:9000\n", ""},
}

func TestReadListen(t *testing.T) {
	for _, c := range readListenCases {
		got, ok := ReadListen([]byte(c.file))
		if (c.want == "") != !ok || ok && got.String() != c.want {
			t.Errorf("ReadListen(%q) = %v, %v; want %q", c.file, got, ok, c.want)
		}
	}
}

// FuzzReadListen: whatever the file, an address ReadListen returns is the
// one the YAML library's reading (oneshot.ListenOf, what `healthbridge
// healthcheck` uses) gives, when the library can read the file at all (a
// server cannot have started with a file it cannot read, so no address
// read from one can be a server's other than by chance).
func FuzzReadListen(f *testing.F) {
	for _, c := range readListenCases {
		f.Add([]byte(c.file))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := ReadListen(data)
		if !ok {
			return
		}
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		want, err := oneshot.ListenOf(path)
		if err != nil {
			return
		}
		// The same address in another spelling ("[::A]:1" and
		// "[::a]:1") is the same server: compare what is dialled.
		if w, perr := netip.ParseAddrPort(want); perr != nil || w != got {
			t.Fatalf("ReadListen(%q) = %v, but the YAML library reads %q (%v)", data, got, want, perr)
		}
	})
}

// TestAskHostileServers: whatever a server on the address does, Ask
// returns within its timeout with a code only for a real status line.
func TestAskHostileServers(t *testing.T) {
	for _, c := range []struct {
		name  string
		serve func(net.Conn)
		code  int // 0: an error
	}{
		{"200", func(c net.Conn) { readRequest(c); io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") }, 200},
		{"503 in pieces", func(c net.Conn) {
			readRequest(c)
			for _, b := range []string{"HTTP/1", ".0 50", "3 Service Unavailable\r", "\n\r\n"} {
				io.WriteString(c, b)
				time.Sleep(5 * time.Millisecond)
			}
		}, 503},
		{"closes at once", func(c net.Conn) {}, 0},
		{"garbage", func(c net.Conn) { readRequest(c); io.WriteString(c, "SSH-2.0-OpenSSH\r\n") }, 0},
		{"no line end", func(c net.Conn) { readRequest(c); io.WriteString(c, "HTTP/1.1 200 "+strings.Repeat("x", 4096)) }, 0},
		{"never answers", func(c net.Conn) { readRequest(c); _, _ = io.Copy(io.Discard, c) }, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				c.serve(conn)
			}()
			addr := netip.MustParseAddrPort(ln.Addr().String())
			start := time.Now()
			code, err := Ask(addr, "livez", 500*time.Millisecond)
			// Bounded: the timeout, plus scheduling slack on a loaded machine.
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("took %v with a 500ms timeout", took)
			}
			if c.code == 0 && err == nil || c.code != 0 && (err != nil || code != c.code) {
				t.Fatalf("Ask = %d, %v; want %d", code, err, c.code)
			}
		})
	}
	// Nothing listening: refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	if _, err := Ask(addr, "livez", time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("closed port: %v", err)
	}
}

// readRequest reads the request's head.
func readRequest(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil || line == "\r\n" {
			return
		}
	}
}

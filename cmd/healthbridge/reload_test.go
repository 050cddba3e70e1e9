package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

// hookEvents is a real webhook receiver that keeps what healthbridge
// POSTs.
type hookEvents struct {
	mu  sync.Mutex
	got []map[string]any
}

func (h *hookEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev map[string]any
	_ = json.NewDecoder(r.Body).Decode(&ev)
	h.mu.Lock()
	h.got = append(h.got, ev)
	h.mu.Unlock()
}

// lines returns the events received as "check from>to reason".
func (h *hookEvents) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ev := range h.got {
		out = append(out, fmt.Sprintf("%v %v>%v %v", ev["check"], ev["from"], ev["to"], ev["reason"]))
	}
	return out
}

func (h *hookEvents) waitFor(t *testing.T, line string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(strings.Join(h.lines(), "\n")+"\n", line+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("no webhook event %q; got:\n%s", line, strings.Join(h.lines(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the value of the series whose line starts with prefix,
// and whether there is one.
func metric(t *testing.T, p *child, prefix string) (float64, bool) {
	t.Helper()
	_, body := p.Get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v, true
		}
	}
	return 0, false
}

func postReload(t *testing.T, admin string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+admin+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReloadKeepsUnchangedChecks: SIGHUP and POST /-/reload with a real
// process, a real webhook receiver and real probes. An unchanged check
// keeps its counters and sends no event; a changed, an added and a removed
// check each send their "reload" events and the removed one's series goes;
// an invalid file, or one that moves listen, is refused with every
// problem, the running config kept and the reload metric 0; a valid file
// afterwards sets it back to 1.
func TestReloadKeepsUnchangedChecks(t *testing.T) {
	hook := &hookEvents{}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	admin := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	head := fmt.Sprintf("listen: 127.0.0.1:0\nreloadEndpoint: true\nadminListen: %q\nnotify: [{url: %q}]\nchecks:\n", admin, srv.URL)
	v1 := head + `  - {name: keep, exec: {command: ["true"]}, periodSeconds: 1}
  - {name: change, exec: {command: ["true"]}, periodSeconds: 1}
  - {name: gone, exec: {command: ["true"]}, periodSeconds: 1}
`
	v2 := head + `  - {name: added, exec: {command: ["true"]}, periodSeconds: 1}
  - {name: keep, exec: {command: ["true"]}, periodSeconds: 1}
  - {name: change, exec: {command: ["true"]}, periodSeconds: 2}
`
	cfg := writeConfig(t, v1)
	p := start(t, "--config", cfg)
	for _, c := range []string{"keep", "change", "gone"} {
		hook.waitFor(t, c+" starting>healthy <nil>")
	}
	keepSeries := `healthbridge_check_probe_total{check="keep",kind="exec",result="success"}`
	before, _ := metric(t, p, keepSeries)

	if err := os.WriteFile(cfg, []byte(v2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	hook.waitFor(t, "added starting>healthy <nil>")
	hook.waitFor(t, "change starting>healthy <nil>")
	got := strings.Join(hook.lines(), "\n") + "\n"
	for _, want := range []string{"gone healthy>absent reload", "change healthy>absent reload", "change absent>starting reload", "added absent>starting reload"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("no webhook event %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "keep "); n != 1 {
		t.Errorf("the unchanged check sent %d events, want its first one only:\n%s", n, got)
	}
	if after, _ := metric(t, p, keepSeries); after < before {
		t.Errorf("the unchanged check's counter went from %v to %v: its state was not kept", before, after)
	}
	if _, ok := metric(t, p, `healthbridge_check_up{check="gone"`); ok {
		t.Error("the removed check's series is still exported")
	}
	if v, _ := metric(t, p, "healthbridge_config_last_reload_successful "); v != 1 {
		t.Errorf("healthbridge_config_last_reload_successful %v after a good reload", v)
	}
	for _, want := range []string{`msg="check added by reload" check=added`, `msg="check changed by reload: it starts over" check=change`,
		`msg="check removed by reload" check=gone`, `msg="config reloaded" trigger=signal`} {
		if !strings.Contains(p.Logs(), want) {
			t.Errorf("no log line %s", want)
		}
	}

	// Refused: a bad port and a moved listener. The running config stays.
	for _, bad := range []struct{ body, want string }{
		{head + "  - {name: keep, tcpSocket: {port: 0}}\n", "checks[0].tcpSocket.port: must be 1-65535"},
		{strings.Replace(v2, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1), "listen: cannot change without a restart"},
	} {
		if err := os.WriteFile(cfg, []byte(bad.body), 0o644); err != nil {
			t.Fatal(err)
		}
		code, body := postReload(t, admin)
		if code != 400 || !strings.Contains(body, bad.want) {
			t.Errorf("reload of a bad file: %d %q, want 400 naming %q", code, body, bad.want)
		}
		if v, _ := metric(t, p, "healthbridge_config_last_reload_successful "); v != 0 {
			t.Errorf("healthbridge_config_last_reload_successful %v after a refused reload", v)
		}
		if !strings.Contains(p.Logs(), "config reload refused: the running config is kept") {
			t.Error("a refused reload was not logged")
		}
		if code, body := p.Get(t, "/readyz?verbose"); code != 200 || !strings.Contains(body, "[+]added ok") {
			t.Errorf("after a refused reload: %d %q", code, body)
		}
	}
	if err := os.WriteFile(cfg, []byte(v2), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := postReload(t, admin); code != 200 || !strings.Contains(body, "3 kept, 0 added") {
		t.Errorf("reload of the same good file: %d %q", code, body)
	}
	if v, _ := metric(t, p, "healthbridge_config_last_reload_successful "); v != 1 {
		t.Errorf("healthbridge_config_last_reload_successful %v after a good reload", v)
	}
	// The public listener knows nothing of /-/reload.
	if code, _ := p.Get(t, "/-/reload"); code != 404 {
		t.Errorf("GET /-/reload on the public listener: %d", code)
	}
}

var reloadedRE = regexp.MustCompile(`msg="config reloaded" trigger=watch`)

// TestWatchConfigSeesASymlinkSwap: a ConfigMap volume updated as the
// kubelet updates it (a new timestamped directory, then the "..data"
// symlink replaced atomically by a rename) is reloaded by watchConfig.
func TestWatchConfigSeesASymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "healthbridge.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	body := "listen: 127.0.0.1:0\nwatchConfig: true\nchecks:\n  - {name: a, exec: {command: [\"true\"]}, periodSeconds: 1}\n"
	write("..2026_12_06_10_00_00.000000001", body)
	if err := os.Symlink("..data/healthbridge.yaml", filepath.Join(dir, "healthbridge.yaml")); err != nil {
		t.Fatal(err)
	}
	p := start(t, "--config", filepath.Join(dir, "healthbridge.yaml"))
	p.WaitFor(t, "/readyz/a", func(code int, _ string) bool { return code == 200 })
	write("..2026_12_06_10_01_00.000000002", body+"  - {name: b, exec: {command: [\"true\"]}, periodSeconds: 1}\n")
	deadline := time.Now().Add(20 * time.Second)
	for !reloadedRE.MatchString(p.Logs()) {
		if time.Now().After(deadline) {
			t.Fatalf("the symlink swap was not reloaded: %s", p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.WaitFor(t, "/readyz/b", func(code int, _ string) bool { return code == 200 })
}

// procCount reads what /proc says of pid: open fds, threads and VmRSS in
// kB.
func procCount(t *testing.T, pid int) (fds, threads, rssKB int) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			switch f[0] {
			case "Threads:":
				threads, _ = strconv.Atoi(f[1])
			case "VmRSS:":
				rssKB, _ = strconv.Atoi(f[1])
			}
		}
	}
	return len(ents), threads, rssKB
}

// TestReloadLoopLeaksNothing: 100 reloads, each changing one exec check
// whose run is often in flight, while 200 tcpSocket checks run: no fd,
// thread or goroutine growth beyond a small bound, no growth of the Go
// heap between the 50th and the 100th reload (VmRSS is reported, not
// asserted: under -race and a loaded machine it follows the collector's
// timing more than any leak), and never two runs of the changed check at
// once (each run holds a lock directory: a second
// instance would fail to take it and the check would record a failure).
func TestReloadLoopLeaksNothing(t *testing.T) {
	target := testutil.Listen(t, func(c net.Conn) { c.Close() })
	_, port, _ := net.SplitHostPort(target)
	lock := filepath.Join(t.TempDir(), "lock")
	admin := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	var tcp strings.Builder
	for i := range 200 {
		fmt.Fprintf(&tcp, "  - {name: t%d, tcpSocket: {port: %s}, periodSeconds: 1}\n", i, port)
	}
	conf := func(timeout int) string {
		return fmt.Sprintf("listen: 127.0.0.1:0\nreloadEndpoint: true\nadminListen: %q\nchecks:\n", admin) + tcp.String() +
			fmt.Sprintf("  - {name: single, exec: {command: [sh, -c, \"mkdir %s || exit 7; sleep 0.3; rmdir %s\"]}, periodSeconds: 1, timeoutSeconds: %d, failureThreshold: 1}\n", lock, lock, timeout)
	}
	cfg := writeConfig(t, conf(5))
	p := start(t, "--config", cfg)
	p.WaitFor(t, "/readyz", func(code int, _ string) bool { return code == 200 })
	// settle is the least of a few looks (runs come and go): open fds,
	// threads, VmRSS, goroutines and the Go heap in use (the last two from
	// the full build's Go runtime metrics; 0 in the lean build).
	settle := func() (fds, threads, rss int, goroutines, heap float64) {
		fds, threads, rss, goroutines, heap = 1<<30, 1<<30, 1<<30, 1e12, 1e12
		for range 5 {
			f, th, r := procCount(t, p.Cmd.Process.Pid)
			g, _ := metric(t, p, "go_goroutines ")
			h, _ := metric(t, p, "go_memstats_heap_inuse_bytes ")
			fds, threads, rss, goroutines, heap = min(fds, f), min(threads, th), min(rss, r), min(goroutines, g), min(heap, h)
			time.Sleep(200 * time.Millisecond)
		}
		return
	}
	reloads := func(from, to int) {
		for i := from; i < to; i++ {
			if err := os.WriteFile(cfg, []byte(conf(6-i%2)), 0o644); err != nil {
				t.Fatal(err)
			}
			if code, body := postReload(t, admin); code != 200 || !strings.Contains(body, "200 kept, 0 added, 1 changed") {
				t.Fatalf("reload %d: %d %q", i, code, body)
			}
		}
		p.WaitFor(t, "/readyz/single", func(code int, _ string) bool { return code == 200 })
	}
	fds0, threads0, rss0, g0, _ := settle()
	// The first 50 reloads warm what is reused (pools, the heap's size);
	// the next 50 must not grow the heap: a leak grows with every reload.
	reloads(0, 50)
	_, _, _, _, heap50 := settle()
	reloads(50, 100)
	fds1, threads1, rss1, g1, heap100 := settle()
	testutil.Report(t, "100 reloads beside 200 checks: fds %d -> %d, threads %d -> %d, goroutines %v -> %v, Go heap in use after 50 / 100 reloads %.1f / %.1f MB, VmRSS %d -> %d kB",
		fds0, fds1, threads0, threads1, g0, g1, heap50/1e6, heap100/1e6, rss0, rss1)
	if fds1 > fds0+5 || threads1 > threads0+4 || g1 > g0+20 || heap100 > heap50+4e6 {
		t.Errorf("growth after 100 reloads: fds %d -> %d, threads %d -> %d, goroutines %v -> %v, heap in use after 50 / 100 reloads %.0f / %.0f",
			fds0, fds1, threads0, threads1, g0, g1, heap50, heap100)
	}
	if v, _ := metric(t, p, `healthbridge_check_probe_total{check="single",kind="exec",result="failure"}`); v != 0 {
		t.Errorf("the changed check failed %v times: two runs overlapped", v)
	}
	if strings.Contains(p.Logs(), "check=single") && strings.Contains(p.Logs(), "to=unhealthy") {
		t.Errorf("the changed check turned unhealthy: %s", p.Logs())
	}
}

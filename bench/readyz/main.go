// Command readyz loads healthbridge's /readyz over loopback and reports its
// requests per second as a ratio to a bare net/http handler answering "ok",
// measured in the same run with the same client.
//
//	go run ./bench/readyz [-n 200000] [-c 16] [-rounds 3]
//	go run ./bench/readyz -wrk [-d 5s] [-c 16] [-rounds 3]
//
// With -wrk the load comes from wrk (an external load generator, which a
// Go client's own CPU cannot blur) and the figure is the server's CPU per
// request: utime+stime of the server process ÷ requests served, with
// keep-alive and with "Connection: close", as a ratio to two floors: the
// bare handler's, and the same handler setting Cache-Control: no-store in a
// server with healthbridge's four timeouts (what any health endpoint that
// must not be cached and must not be held open by a slow client costs).
//
// Both servers run as separate processes (the load generator would
// otherwise steal their CPU unevenly): healthbridge with a config of three
// healthy checks, and this program re-executed as the bare server. Rounds
// alternate bare, healthbridge, bare, … so drift affects both alike; the
// ratio is of the medians.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healthbridge/healthbridge/bench/internal/measure"
)

func main() {
	bare := flag.String("serve-bare", "", "internal: serve a bare ok handler on this address")
	matched := flag.Bool("matched", false, "internal: with -serve-bare, set Cache-Control: no-store and healthbridge's four server timeouts")
	n := flag.Int("n", 200000, "requests per round")
	c := flag.Int("c", 16, "concurrent keep-alive connections")
	rounds := flag.Int("rounds", 3, "rounds per server")
	maxDur := flag.Duration("max", 60*time.Second, "stop a round after this long")
	useWrk := flag.Bool("wrk", false, "load with wrk and report server CPU per request")
	dur := flag.Duration("d", 5*time.Second, "with -wrk: duration of each load")
	flag.Parse()
	loadWith = func(url string, pid int, keepAlive bool) (float64, float64, error) {
		return loadWrk(url, pid, keepAlive, *c, *dur)
	}
	if !*useWrk {
		loadWith = nil
	}
	if *bare != "" {
		serveBare(*bare, *matched)
		return
	}
	if err := run(*n, *c, *rounds, *maxDur); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serveBare serves "ok" on addr. matched: the handler also sets
// Cache-Control: no-store and the server the four timeouts healthbridge's
// has (ReadHeaderTimeout 5 s, ReadTimeout and WriteTimeout 10 s,
// IdleTimeout 60 s) — the floor a health endpoint that protects itself the
// same way costs.
func serveBare(addr string, matched bool) {
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})}
	if matched {
		srv = &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			_, _ = io.WriteString(w, "ok")
		}), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	}
	fmt.Fprintln(os.Stderr, "msg=serving addr="+addr)
	_ = srv.ListenAndServe()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func run(n, c, rounds int, maxDur time.Duration) error {
	dir, err := os.MkdirTemp("", "hb-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hb := filepath.Join(dir, "healthbridge")
	if out, err := exec.Command("go", "build", "-o", hb, "./cmd/healthbridge").CombinedOutput(); err != nil {
		return fmt.Errorf("build (run from the repository root): %v\n%s", err, out)
	}
	// Three checks that are healthy: TCP to the bare server's port.
	bareAddr, err := freeAddr()
	if err != nil {
		return err
	}
	hbAddr, err := freeAddr()
	if err != nil {
		return err
	}
	_, barePort, _ := net.SplitHostPort(bareAddr)
	cfg := filepath.Join(dir, "config.yaml")
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nchecks:\n", hbAddr)
	for _, name := range []string{"a", "b", "c"} {
		fmt.Fprintf(&b, "  - name: %s\n    tcpSocket: {port: %s}\n    periodSeconds: 1\n    failureThreshold: 1\n", name, barePort)
	}
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return err
	}
	self, _ := os.Executable()
	bareCmd, err := startServer(self, "-serve-bare", bareAddr)
	if err != nil {
		return err
	}
	defer bareCmd.Process.Kill()
	hbCmd, err := startServer(hb, "--config", cfg, "--log-level", "warn")
	if err != nil {
		return err
	}
	defer hbCmd.Process.Kill()
	if err := waitFor("http://"+hbAddr+"/readyz", 200, 20*time.Second); err != nil {
		return err
	}
	if err := waitFor("http://"+bareAddr+"/readyz", 200, 20*time.Second); err != nil {
		return err
	}

	if loadWith != nil {
		matchedAddr, err := freeAddr()
		if err != nil {
			return err
		}
		matchedCmd, err := startServer(self, "-serve-bare", matchedAddr, "-matched")
		if err != nil {
			return err
		}
		defer matchedCmd.Process.Kill()
		if err := waitFor("http://"+matchedAddr+"/readyz", 200, 20*time.Second); err != nil {
			return err
		}
		return cpuRounds([]floor{
			{"bare", "http://" + bareAddr + "/readyz", bareCmd.Process.Pid},
			{"bare + no-store + timeouts", "http://" + matchedAddr + "/readyz", matchedCmd.Process.Pid},
		}, "http://"+hbAddr+"/readyz", hbCmd.Process.Pid, rounds)
	}
	var bareRates, hbRates []float64
	for r := 0; r < rounds; r++ {
		br, err := load("http://"+bareAddr+"/readyz", n, c, maxDur)
		if err != nil {
			return err
		}
		hr, err := load("http://"+hbAddr+"/readyz", n, c, maxDur)
		if err != nil {
			return err
		}
		bareRates, hbRates = append(bareRates, br), append(hbRates, hr)
		fmt.Printf("round %d: bare %.0f req/s, healthbridge /readyz %.0f req/s (ratio %.3f)\n", r+1, br, hr, hr/br)
	}
	mb, mh := measure.Median(bareRates), measure.Median(hbRates)
	fmt.Printf("median: bare %.0f req/s, healthbridge /readyz %.0f req/s\nratio healthbridge/bare: %.3f (%d requests x %d rounds, %d connections)\n",
		mb, mh, mh/mb, n, rounds, c)
	return nil
}

func startServer(bin string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = os.Stdout
	errp, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(errp)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "level=ERROR") {
				fmt.Fprintln(os.Stderr, sc.Text())
			}
		}
	}()
	return cmd, nil
}

func waitFor(url string, code int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == code {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %d within %v", url, code, within)
}

// load sends n GETs over c keep-alive connections and returns requests/s.
// Every response must be 200.
func load(url string, n, c int, maxDur time.Duration) (float64, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var left atomic.Int64
	left.Store(int64(n))
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(maxDur)
	start := time.Now()
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 && time.Now().Before(deadline) {
				resp, err := client.Get(url)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: status %d", url, resp.StatusCode))
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, e.(error)
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

// loadWith, when set (-wrk), loads a server and returns its CPU seconds
// per request and the requests served.
var loadWith func(url string, pid int, keepAlive bool) (cpuPerReq, reqs float64, err error)

// cpuRounds alternates bare and healthbridge, keep-alive then
// Connection: close, and prints server CPU per request as ratios.
// floor is a bare server cpuRounds compares healthbridge with.
type floor struct {
	name, url string
	pid       int
}

func cpuRounds(floors []floor, hbURL string, hbPid int, rounds int) error {
	for _, keepAlive := range []bool{true, false} {
		mode := "keep-alive"
		if !keepAlive {
			mode = "Connection: close"
		}
		ratios := make([][]float64, len(floors))
		for r := 0; r < rounds; r++ {
			var line strings.Builder
			cpu := make([]float64, len(floors))
			for i, f := range floors {
				b, bn, err := loadWith(f.url, f.pid, keepAlive)
				if err != nil {
					return err
				}
				cpu[i] = b
				fmt.Fprintf(&line, "%s %.1f µs (%.0f req), ", f.name, b*1e6, bn)
			}
			h, hn, err := loadWith(hbURL, hbPid, keepAlive)
			if err != nil {
				return err
			}
			fmt.Fprintf(&line, "healthbridge /readyz %.1f µs (%.0f req)", h*1e6, hn)
			for i, f := range floors {
				ratios[i] = append(ratios[i], h/cpu[i])
				fmt.Fprintf(&line, ", ratio to %s %.3f", f.name, h/cpu[i])
			}
			fmt.Printf("round %d, %s: server CPU per request: %s\n", r+1, mode, line.String())
		}
		for i, f := range floors {
			s := append([]float64(nil), ratios[i]...)
			sort.Float64s(s)
			fmt.Printf("server CPU per request, healthbridge/%s, %s: min %.3f median %.3f max %.3f\n", f.name, mode, s[0], measure.Median(s), s[len(s)-1])
		}
	}
	return nil
}

// loadWrk runs wrk against url and returns the server's CPU seconds per
// request (from /proc/<pid>/stat around the run) and the requests.
func loadWrk(url string, pid int, keepAlive bool, c int, d time.Duration) (float64, float64, error) {
	args := []string{"-t", "1", "-c", fmt.Sprint(c), "-d", fmt.Sprintf("%ds", int(d.Seconds()))}
	if !keepAlive {
		args = append(args, "-H", "Connection: close")
	}
	cpu0 := measure.CPU(pid, false)
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	cpu1 := measure.CPU(pid, false)
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "Non-2xx") {
		return 0, 0, fmt.Errorf("wrk saw non-2xx answers from %s:\n%s", url, out)
	}
	var reqs float64
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "requests" && f[2] == "in" {
			fmt.Sscan(f[0], &reqs)
		}
	}
	if reqs == 0 {
		return 0, 0, fmt.Errorf("wrk output without a request count:\n%s", out)
	}
	return (cpu1 - cpu0) / reqs, reqs, nil
}

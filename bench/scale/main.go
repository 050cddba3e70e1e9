// Command scale runs many checks in one healthbridge and measures it
// against its floor, a bare Go loop doing the same probes at the same rate
// in the same run (issue "Lean in every pod"):
//
//	go run ./bench/scale [-kind tcp|http|exec] [-n 10000] [-period 10s] [-window 30s] [-rounds 1]
//
// For each round it runs, as separate processes, the floor and then
// healthbridge (built from this tree, or -bin) against the same loopback
// targets (another process: 20 listeners that accept and close, or answer
// HTTP 200), and reports:
//
//   - time until every check is healthy (the target: within one period);
//   - CPU per probe (utime+stime of the process and its reaped children ÷
//     probes run in the window), and its ratio to the floor's;
//   - probes per second run against planned (n ÷ period);
//   - schedule jitter: a run's start minus its planned start (the previous
//     run's end plus the period), from healthbridge's own result times;
//   - the working set (each process runs in a memory cgroup of its own when
//     run as root: usage − inactive file, as the kubelet counts), VmRSS,
//     RssAnon, threads and goroutines at the end of the window;
//   - /readyz latency p50/p99 polled every 10 ms during the window;
//   - one /metrics scrape: time and size;
//   - sockets left in TIME_WAIT towards the targets;
//   - SIGTERM: time until /readyz fails, and until the process exits
//     (shutdownDelaySeconds is 2).
//
// It also measures what Linux does with a probe's SO_LINGER setting: 2,000
// connects and closes with no option, the kubelet's 1 s linger and a
// linger of 0, counting the sockets each leaves in TIME_WAIT.
//
// Figures only: nothing here asserts a timing.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/healthbridge/healthbridge/bench/internal/measure"
	"github.com/healthbridge/healthbridge/internal/cgmem"
	"github.com/healthbridge/healthbridge/internal/probe"
)

func main() {
	kind := flag.String("kind", "tcp", "check kind: tcp, http or exec")
	n := flag.Int("n", 10000, "checks")
	period := flag.Duration("period", 10*time.Second, "periodSeconds (whole seconds)")
	window := flag.Duration("window", 30*time.Second, "measurement window, after one period of warm-up")
	rounds := flag.Int("rounds", 1, "rounds (floor, then healthbridge, each round)")
	bin := flag.String("bin", "", "healthbridge binary (default: build ./cmd/healthbridge)")
	tags := flag.String("tags", "", "build tags for the built binary (e.g. lean)")
	targets := flag.Int("targets", 20, "loopback listeners the checks are spread over")
	serve := flag.String("serve-targets", "", "internal: serve targets of this kind")
	floor := flag.Bool("floor", false, "internal: run the floor loop")
	addrs := flag.String("addrs", "", "internal: the targets' addresses, comma-separated")
	lingerOnly := flag.Bool("linger", false, "only measure TIME_WAIT with each SO_LINGER setting")
	flag.Parse()
	var err error
	switch {
	case *serve != "":
		err = serveTargets(*serve, *targets)
	case *floor:
		err = runFloor(*kind, *n, *period, *window, strings.Split(*addrs, ","))
	case *lingerOnly:
		err = lingerReport()
	default:
		err = run(*kind, *n, *period, *window, *rounds, *bin, *tags, *targets)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(kind string, n int, period, window time.Duration, rounds int, bin, tags string, ntargets int) error {
	if bin == "" {
		dir, err := os.MkdirTemp("", "scale")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "healthbridge")
		cmd := exec.Command("go", "build", "-tags", tags, "-trimpath", "-o", bin, "./cmd/healthbridge")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var addrs []string
	if kind != "exec" {
		tcmd := exec.Command(self, "-serve-targets", kind, "-targets", strconv.Itoa(ntargets))
		tcmd.Stderr = os.Stderr
		out, _ := tcmd.StdoutPipe()
		in, _ := tcmd.StdinPipe() // the targets exit when it closes
		if err := tcmd.Start(); err != nil {
			return err
		}
		defer func() { in.Close(); _ = tcmd.Wait() }()
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			return fmt.Errorf("targets: %w", err)
		}
		addrs = strings.Split(strings.TrimSpace(line), ",")
	}
	fmt.Printf("scale: %d %s checks, period %v, window %v, %d round(s), %d targets\n", n, kind, period, window, rounds, len(addrs))
	var floorCPU, hbCPU []float64
	for r := 1; r <= rounds; r++ {
		f, err := floorRound(self, kind, n, period, window, addrs)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		floorCPU = append(floorCPU, f)
		h, err := hbRound(bin, kind, n, period, window, addrs)
		if err != nil {
			return fmt.Errorf("healthbridge: %w", err)
		}
		hbCPU = append(hbCPU, h)
		fmt.Printf("round %d: CPU per probe: floor %.0f µs, healthbridge %.0f µs, ratio %.2f\n", r, f*1e6, h*1e6, h/f)
	}
	var ratios []float64
	for i := range hbCPU {
		ratios = append(ratios, hbCPU[i]/floorCPU[i])
	}
	fmt.Printf("CPU per probe ratio to the floor (%s, n=%d): min %.2f median %.2f max %.2f\n", kind, n, slices.Min(ratios), measure.Median(ratios), slices.Max(ratios))
	return nil
}

// floorRound runs the floor process and returns its CPU seconds per probe.
func floorRound(self, kind string, n int, period, window time.Duration, addrs []string) (float64, error) {
	args := []string{"-floor", "-kind", kind, "-n", strconv.Itoa(n), "-period", period.String(),
		"-window", window.String(), "-addrs", strings.Join(addrs, ",")}
	cg, cmd := inCgroup("floor", self, args...)
	if cg != nil {
		defer cg.Remove()
	}
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe() // it exits when this closes, after the reading
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	out, _ := bufio.NewReader(outPipe).ReadString('\n')
	ws := workingSet(cg)
	in.Close()
	if err := cmd.Wait(); err != nil {
		return 0, err
	}
	var cpu float64
	var ops int
	if _, err := fmt.Sscan(out, &cpu, &ops); err != nil || ops == 0 {
		return 0, fmt.Errorf("floor output %q", out)
	}
	fmt.Printf("  floor: %d probes in the window (%.0f/s), %.2f s CPU; %s\n", ops, float64(ops)/window.Seconds(), cpu, ws)
	return cpu / float64(ops), nil
}

// inCgroup is the command name args, in a memory cgroup of its own when
// one can be made (root), so that its working set can be read as the
// kubelet reads a container's; otherwise (nil cgroup) a plain command.
func inCgroup(name, bin string, args ...string) (*cgmem.Group, *exec.Cmd) {
	cg, err := cgmem.New("scale-" + name)
	if err != nil {
		return nil, exec.Command(bin, args...)
	}
	return cg, cg.Command(bin, args...)
}

// workingSet describes cg's working set (cgroup usage − inactive file)
// and anonymous memory, or says why there is none.
func workingSet(cg *cgmem.Group) string {
	if cg == nil {
		return "working set: no memory cgroup (not root?)"
	}
	u, err := cg.Read()
	if err != nil {
		return "working set: " + err.Error()
	}
	return fmt.Sprintf("working set %.1f MB (anon %.1f MB)", u.WorkingSet/1e6, u.Anon/1e6)
}

// runFloor is the bare loop: n goroutines, started 1 ms apart (as
// healthbridge spreads first runs), each probing then sleeping a period,
// as Docker's and healthbridge's schedule. After one period of warm-up it
// prints the CPU seconds (self and reaped children) and probes of the
// window.
func runFloor(kind string, n int, period, window time.Duration, addrs []string) error {
	var ops atomic.Int64
	counting := atomic.Bool{}
	ctx, cancel := context.WithCancel(context.Background())
	spacing := min(time.Millisecond, period/time.Duration(n))
	dialer := probe.Dialer() // the probes' own: SO_LINGER 0
	dialer.Timeout = time.Second
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := ""
			if len(addrs) > 0 {
				addr = addrs[i%len(addrs)]
			}
			client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
			t := time.NewTimer(time.Duration(i) * spacing)
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				var err error
				switch kind {
				case "tcp":
					var c net.Conn
					if c, err = dialer.Dial("tcp", addr); err == nil {
						c.Close()
					}
				case "http":
					var resp *http.Response
					if resp, err = client.Get("http://" + addr + "/"); err == nil {
						_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
						resp.Body.Close()
					}
				case "exec":
					err = exec.Command("true").Run()
				}
				if err == nil && counting.Load() {
					ops.Add(1)
				}
				t.Reset(period)
			}
		}()
	}
	time.Sleep(period)
	c0 := rusageCPU()
	counting.Store(true)
	time.Sleep(window)
	counting.Store(false)
	c1 := rusageCPU()
	got := ops.Load()
	cancel()
	wg.Wait()
	fmt.Println(c1-c0, got)
	_, _ = io.Copy(io.Discard, os.Stdin) // the caller reads the working set first
	return nil
}

func rusageCPU() float64 {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// hbRound runs healthbridge with n checks and returns its CPU seconds per
// probe in the window, printing the other figures.
func hbRound(bin, kind string, n int, period, window time.Duration, addrs []string) (float64, error) {
	dir, err := os.MkdirTemp("", "scale")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nshutdownDelaySeconds: 2\nchecks:\n", addr)
	for i := range n {
		fmt.Fprintf(&b, "  - name: c%d\n    periodSeconds: %d\n    roles: [liveness, readiness]\n", i, int(period.Seconds()))
		switch kind {
		case "tcp":
			host, port, _ := net.SplitHostPort(addrs[i%len(addrs)])
			fmt.Fprintf(&b, "    tcpSocket: {host: %s, port: %s}\n", host, port)
		case "http":
			host, port, _ := net.SplitHostPort(addrs[i%len(addrs)])
			fmt.Fprintf(&b, "    httpGet: {host: %s, port: %s, path: /}\n", host, port)
		case "exec":
			b.WriteString("    exec: {command: [\"true\"]}\n")
		}
	}
	cfg := filepath.Join(dir, "hb.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return 0, err
	}
	cg, cmd := inCgroup("healthbridge", bin, "--config", cfg, "--log-level", "warn")
	if cg != nil {
		defer cg.Remove()
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	pid := cmd.Process.Pid
	base := "http://" + addr
	// Plain text unless a request asks for gzip itself (scrapeSize).
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}

	// Every check healthy: /readyz 200.
	healthyAfter := time.Duration(-1)
	for deadline := start.Add(period*3 + 30*time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if code, _, _ := get(client, base+"/readyz"); code == 200 {
			healthyAfter = time.Since(start)
			break
		}
	}
	if healthyAfter < 0 {
		return 0, errors.New("never all healthy")
	}
	within := "within"
	if healthyAfter > period {
		within = "NOT within"
	}
	fmt.Printf("  healthbridge: every check healthy %v after start (%s one period)\n", healthyAfter.Round(time.Millisecond), within)
	time.Sleep(time.Until(start.Add(period)))

	// The CPU window: nothing but the probes.
	runs0, _, err := scrapeRuns(client, base)
	if err != nil {
		return 0, err
	}
	cpu0 := measure.CPU(pid, true)
	windowStart := time.Now()
	time.Sleep(window)
	cpu1 := measure.CPU(pid, true)
	windowEnd := time.Now()
	status := measure.Status(pid) // before the scrape, whose buffers add to it
	ws := workingSet(cg)
	t := time.Now()
	runs1, metricsBytes, err := scrapeRuns(client, base)
	if err != nil {
		return 0, err
	}
	scrape := time.Since(t)
	probes := runs1 - runs0
	if probes <= 0 {
		return 0, errors.New("no probes ran in the window")
	}
	// Then /readyz polled every 10 ms on a keep-alive connection, for a
	// third of the window, while the probes go on.
	var lat []time.Duration
	for end := time.Now().Add(window / 3); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		t := time.Now()
		if code, _, _ := get(client, base+"/readyz"); code == 200 {
			lat = append(lat, time.Since(t))
		} else {
			lat = append(lat, time.Hour) // a failure counts as slowest
		}
	}
	after := measure.Status(pid)
	fmt.Printf("  probes: %.0f/s run, %.0f/s planned; CPU %.2f s in %v = %.0f µs per probe (%.1f%% of one core)\n",
		float64(probes)/window.Seconds(), float64(n)/period.Seconds(), cpu1-cpu0, window, (cpu1-cpu0)/float64(probes)*1e6, (cpu1-cpu0)/window.Seconds()*100)
	fmt.Printf("  memory: %s; VmRSS %s, RssAnon %s (after a /metrics scrape: VmRSS %s); threads %s, goroutines %s\n",
		ws, status["VmRSS"], status["RssAnon"], after["VmRSS"], status["Threads"], goroutines)
	fmt.Printf("  /readyz latency while probing (%d requests, 10 ms apart): p50 %v p99 %v max %v\n", len(lat), pct(lat, 50), pct(lat, 99), slices.Max(lat).Round(10*time.Microsecond))
	fmt.Printf("  /metrics scrape: %v, %d bytes\n", scrape.Round(time.Millisecond), metricsBytes)
	if took, n, err := scrapeSize(client, base+"/metrics"); err == nil {
		fmt.Printf("  /metrics scrape with Accept-Encoding: gzip (as Prometheus asks): %v, %d bytes (%.1f%%)\n", took.Round(time.Millisecond), n, 100*float64(n)/float64(metricsBytes))
	} else {
		fmt.Println("  /metrics scrape with gzip:", err)
	}
	if j, err := jitter(client, base, period, start, windowStart, windowEnd); err == nil {
		fmt.Printf("  schedule jitter (start − planned start, %d runs): p50 %v p99 %v max %v\n", len(j), pct(j, 50), pct(j, 99), slices.Max(j).Round(10*time.Microsecond))
	} else {
		fmt.Println("  schedule jitter:", err)
	}
	if kind != "exec" {
		probeSide, targetSide := timeWait(addrs)
		fmt.Printf("  TIME_WAIT towards the targets: %d on the prober's side, %d on the targets'\n", probeSide, targetSide)
	}

	// SIGTERM: readiness fails at once; exit within the shutdown delay.
	sig := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	failedAfter := time.Duration(-1)
	for time.Since(sig) < 10*time.Second {
		if code, _, err := get(client, base+"/readyz"); code != 200 || err != nil {
			failedAfter = time.Since(sig)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	select {
	case <-exited:
	case <-time.After(120 * time.Second):
	}
	fmt.Printf("  SIGTERM: /readyz failing after %v, exit after %v (shutdownDelaySeconds 2)\n", failedAfter.Round(time.Millisecond), time.Since(sig).Round(time.Millisecond))
	return (cpu1 - cpu0) / float64(probes), nil
}

var goroutines = "?"

// scrapeRuns scrapes /metrics and sums healthbridge_check_probe_total;
// it also notes go_goroutines.
func scrapeRuns(client *http.Client, base string) (float64, int, error) {
	code, body, err := get(client, base+"/metrics")
	if err != nil || code != 200 {
		return 0, 0, fmt.Errorf("/metrics: %d %v", code, err)
	}
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "healthbridge_check_probe_total{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		} else if strings.HasPrefix(line, "go_goroutines ") {
			goroutines = strings.TrimPrefix(line, "go_goroutines ")
		}
	}
	return sum, len(body), nil
}

// jitter reads every check's last results and returns, for runs that
// started in the window after another run (not after a check's first run,
// which began within the first period: the wait after it is shortened by
// the check's phase), start − (previous end + period).
func jitter(client *http.Client, base string, period time.Duration, started, from, to time.Time) ([]time.Duration, error) {
	code, body, err := get(client, base+"/healthz?format=json")
	if err != nil || (code != 200 && code != 503) {
		return nil, fmt.Errorf("json: %d %v", code, err)
	}
	var doc struct {
		Checks map[string][]struct {
			Results []struct {
				Start, End time.Time
			} `json:"results"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, err
	}
	var out []time.Duration
	for _, items := range doc.Checks {
		for _, it := range items {
			rs := it.Results
			slices.SortFunc(rs, func(a, b struct{ Start, End time.Time }) int { return a.Start.Compare(b.Start) })
			for k := 1; k < len(rs); k++ {
				if rs[k].Start.Before(from) || rs[k].Start.After(to) || rs[k-1].Start.Before(started.Add(period)) {
					continue
				}
				out = append(out, rs[k].Start.Sub(rs[k-1].End.Add(period)))
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no runs in the window")
	}
	return out, nil
}

// scrapeSize fetches url asking for gzip and returns how long it took and
// how many bytes came over the wire.
func scrapeSize(client *http.Client, url string) (time.Duration, int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Accept-Encoding", "gzip")
	t := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.Header.Get("Content-Encoding") != "gzip" {
		err = errors.New("the answer was not gzip")
	}
	return time.Since(t), len(b), err
}

func get(client *http.Client, url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// timeWait counts TIME_WAIT sockets (state 06) on the prober's side
// (remote port a target's) and on the targets' (local port a target's).
func timeWait(addrs []string) (probeSide, targetSide int) {
	ports := map[string]bool{}
	for _, a := range addrs {
		_, p, _ := net.SplitHostPort(a)
		n, _ := strconv.Atoi(p)
		ports[fmt.Sprintf("%04X", n)] = true
	}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) < 4 || fs[3] != "06" {
				continue
			}
			local, remote := fs[1][strings.LastIndexByte(fs[1], ':')+1:], fs[2][strings.LastIndexByte(fs[2], ':')+1:]
			if ports[remote] {
				probeSide++
			} else if ports[local] {
				targetSide++
			}
		}
	}
	return probeSide, targetSide
}

// serveTargets serves count loopback targets of kind, prints their
// addresses on one line, and serves until stdin closes.
func serveTargets(kind string, count int) error {
	var addrs []string
	for range count {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addrs = append(addrs, ln.Addr().String())
		switch kind {
		case "http":
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
			go func() { _ = srv.Serve(ln) }()
		default:
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
	}
	fmt.Println(strings.Join(addrs, ","))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// lingerReport connects and closes 2,000 times with each SO_LINGER
// setting and counts the sockets left in TIME_WAIT on each side.
func lingerReport() error {
	for _, mode := range []struct {
		name  string
		onoff int32
		secs  int32
	}{{"no SO_LINGER", 0, 0}, {"SO_LINGER 1 s (the kubelet's)", 1, 1}, {"SO_LINGER 0 (healthbridge's)", 1, 0}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		acceptDone := make(chan struct{})
		go func() {
			defer close(acceptDone)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() { // the target waits for the prober's close
					defer wg.Done()
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					_, _ = c.Read(make([]byte, 1))
					c.Close()
				}()
			}
		}()
		d := &net.Dialer{}
		if mode.onoff == 1 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					_ = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: mode.secs})
				})
			}
		}
		t := time.Now()
		for range 2000 {
			c, err := d.Dial("tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			c.Close()
		}
		took := time.Since(t)
		ln.Close()
		<-acceptDone
		wg.Wait()
		p, s := timeWait([]string{ln.Addr().String()})
		fmt.Printf("linger: %-30s 2,000 connects in %v: TIME_WAIT %d on the prober's side, %d on the target's\n", mode.name, took.Round(time.Millisecond), p, s)
	}
	return nil
}

func pct(v []time.Duration, p int) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	i := (len(s) - 1) * p / 100
	return s[i].Round(10 * time.Microsecond)
}

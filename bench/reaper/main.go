// Command reaper measures what reaping orphans costs healthbridge when its
// pid namespace holds many processes:
//
//	go run ./bench/reaper [-procs 50,5000] [-checks 100] [-window 30s] [-bin PATH]
//
// For each process count it starts, in a new pid namespace with its own
// /proc (unshare --pid --fork --mount-proc, root only), healthbridge run as
// PID 1 (so it reaps orphans) with -checks exec checks of /bin/true every
// 1 s, and as its child a shell that starts that many idle sleep processes
// and waits. Every probe's exit is a SIGCHLD to healthbridge, so the reaper
// sweeps about -checks times a second. It reports healthbridge's own CPU
// time (utime+stime, not its children's) per probe run in the window, read
// from /proc and /metrics (healthbridge_check_probe_total).
//
// The figure to compare is the CPU per probe at many processes against the
// same at few: a sweep that costs O(processes in the namespace) shows as a
// ratio well above 1.
//
// Figures only: nothing here asserts a timing.
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
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/healthbridge/healthbridge/bench/internal/measure"
)

func main() {
	procs := flag.String("procs", "50,5000", "idle processes in the namespace, comma-separated counts")
	checks := flag.Int("checks", 100, "exec checks, each every 1 s")
	window := flag.Duration("window", 30*time.Second, "measurement window, after every check is healthy")
	bin := flag.String("bin", "", "healthbridge binary (default: built from this tree)")
	flag.Parse()
	if os.Getuid() != 0 {
		fmt.Println("reaper: needs root (a pid namespace of its own); skipped")
		return
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		fmt.Println("reaper: no unshare(1); skipped")
		return
	}
	dir, err := os.MkdirTemp("", "hb-reaper-")
	check(err)
	defer os.RemoveAll(dir)
	if *bin == "" {
		*bin = filepath.Join(dir, "healthbridge")
		build := exec.Command("go", "build", "-o", *bin, "./cmd/healthbridge")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		check(build.Run())
	}
	var counts []int
	for _, s := range strings.Split(*procs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		counts = append(counts, n)
	}
	fmt.Printf("reaper: %d exec checks (/bin/true) every 1 s, healthbridge run as PID 1 of a pid namespace, window %v\n", *checks, *window)
	var base float64
	for i, n := range counts {
		per, probes := one(dir, *bin, n, *checks, *window)
		line := fmt.Sprintf("reaper: %5d idle processes: %.1f µs of healthbridge CPU per probe (%d probes)", n, per*1e6, probes)
		if i == 0 {
			base = per
		} else if base > 0 {
			line += fmt.Sprintf(", %.2f× the %d-process figure", per/base, counts[0])
		}
		fmt.Println(line)
	}
}

var probeTotal = regexp.MustCompile(`(?m)^healthbridge_check_probe_total\{[^}]*\} (\d+)`)

// one runs a namespace with n idle processes and returns healthbridge's
// CPU seconds per probe over the window and the probes counted.
func one(dir, bin string, n, checks int, window time.Duration) (float64, int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, fmt.Sprintf("reaper-%d.yaml", n))
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nchecks:\n", addr)
	for i := 0; i < checks; i++ {
		fmt.Fprintf(&b, "  - name: c%d\n    exec: {command: [/bin/true]}\n    periodSeconds: 1\n", i)
	}
	check(os.WriteFile(cfg, []byte(b.String()), 0o644))
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do sleep 100000 & i=$((i+1)); done; echo started; wait`, n)
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", bin, "run", "--config", cfg, "--", "/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	check(err)
	cmd.Stderr = io.Discard
	check(cmd.Start())
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "started" {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(2 * time.Minute):
		fail("the %d sleep processes did not start within 2 minutes", n)
	}
	hb := childPid(cmd.Process.Pid)
	// Every check healthy: all of them have run.
	deadline := time.Now().Add(time.Minute)
	for {
		code, _ := get("http://" + addr + "/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			fail("healthbridge not ready within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cpu0, probes0 := measure.CPU(hb, false), probes(addr)
	time.Sleep(window)
	cpu1, probes1 := measure.CPU(hb, false), probes(addr)
	if probes1 <= probes0 {
		fail("no probes ran in the window")
	}
	return (cpu1 - cpu0) / float64(probes1-probes0), probes1 - probes0
}

// childPid returns the pid of unshare's only child (healthbridge, PID 1
// inside the namespace), as the parent's namespace numbers it.
func childPid(parent int) int {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
		if f := strings.Fields(string(b)); len(f) == 1 {
			pid, _ := strconv.Atoi(f[0])
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	fail("unshare's child did not appear")
	return 0
}

func probes(addr string) int {
	_, body := get("http://" + addr + "/metrics")
	total := 0
	for _, m := range probeTotal.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.Atoi(m[1])
		total += v
	}
	return total
}

func get(url string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "reaper: "+format+"\n", args...)
	os.Exit(1)
}

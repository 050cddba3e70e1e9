// Command idle measures what an idle sidecar costs in every pod, the way
// a cluster bills it: the container's working set (cgroup usage minus
// inactive file pages, as the kubelet, cAdvisor, `kubectl top` and
// `docker stats` compute it), with its anonymous and file-backed parts and
// VmRSS for the record. Subjects run as FROM scratch Docker containers
// side by side (container.go): healthbridge's lean build with one `exec
// true` check every second, with and without the image's HEALTHCHECK; the
// full build with exec, tcpSocket and httpGet checks, with and without it;
// `healthbridge run` as init — against floors in the same run: a bare
// net/http server answering "ok" (bench/idle/bare, built static and
// stripped as healthbridge is), and the same with a plain os/exec loop
// running `true` every second, the plainest Go program doing one exec
// check's work. It also prints the stripped static binaries' sizes:
//
//	go run ./bench/idle [-settle 60s] [-rounds 3] [-mode container|process]
//
// The working set is read at 5 s and at -settle; the figures are medians
// over the rounds with min–max. Read too soon (before the first
// collections, tens of seconds in at one check a second) the heap has
// not yet grown to its steady size and the figure flatters. -mode process
// runs plain processes and reads VmRSS alone (no Docker needed). Figures
// only, nothing asserted.
package main

import (
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
	"time"

	"github.com/healthbridge/healthbridge/bench/internal/measure"
)

func main() {
	settle := flag.Duration("settle", 60*time.Second, "idle time before reading memory (the steady state comes after the first collections, tens of seconds in)")
	rounds := flag.Int("rounds", 3, "rounds")
	mode := flag.String("mode", "container", "container: each subject in a Docker container, its cgroup's working set read as the kubelet does; process: plain processes, VmRSS only")
	flag.Parse()
	if *mode != "container" && *mode != "process" {
		fmt.Fprintln(os.Stderr, "idle: -mode must be container or process")
		os.Exit(2)
	}
	containers = *mode == "container"
	if err := run(*settle, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

// containers selects the container mode (runContainers).
var containers bool

type target struct {
	name string
	argv func(addr string) []string
}

func run(settle time.Duration, rounds int) error {
	dir, err := os.MkdirTemp("", "idle")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Each as the release builds it (deploy/release.sh): the one-shot
	// probe without inlining.
	builds := []struct{ name, tags, gcflags, pkg string }{
		{"healthbridge", "", "", "./cmd/healthbridge"},
		{"healthbridge-lean", "lean nethttpomithttp2", "", "./cmd/healthbridge"},
		{"healthbridge-probe", "lean nethttpomithttp2", "all=-l", "./cmd/healthbridge-probe"},
		{"healthbridge-kube", "", "", "./cmd/healthbridge-kube"},
		{"healthbridge-healthcheck", "", "", "./cmd/healthbridge-healthcheck"},
		{"bare", "", "", "./bench/idle/bare"},
	}
	for _, b := range builds {
		cmd := exec.Command("go", "build", "-tags", b.tags, "-gcflags="+b.gcflags, "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, b.name), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b.name, err, out)
		}
		st, _ := os.Stat(filepath.Join(dir, b.name))
		fmt.Printf("binary %-20s %9d bytes (%.2f MiB)\n", b.name, st.Size(), float64(st.Size())/(1<<20))
	}
	if containers {
		return runContainers(dir, settle, rounds)
	}
	config := func(addr, checks string) (string, error) {
		p := filepath.Join(dir, strings.ReplaceAll(addr, ":", "_")+".yaml")
		return p, os.WriteFile(p, []byte("listen: "+addr+"\nchecks:\n"+checks), 0o644)
	}
	const execCheck = "  - {name: t, exec: {command: [\"true\"]}, periodSeconds: 1}\n"
	threeKinds := execCheck + "  - {name: tcp, tcpSocket: {port: PORT}, periodSeconds: 1}\n  - {name: http, httpGet: {port: PORT, path: /livez}, periodSeconds: 1}\n"
	targets := []target{
		{"bare net/http \"ok\"", func(addr string) []string { return []string{filepath.Join(dir, "bare"), addr} }},
		{"bare + exec loop", func(addr string) []string { return []string{filepath.Join(dir, "bare"), addr, "exec"} }},
		{"bare + exec + trim", func(addr string) []string { return []string{filepath.Join(dir, "bare"), addr, "exec-trim"} }},
		{"full, exec true", func(addr string) []string {
			p, _ := config(addr, execCheck)
			return []string{filepath.Join(dir, "healthbridge"), "--config", p}
		}},
		{"full, exec+tcp+http", func(addr string) []string {
			_, port, _ := net.SplitHostPort(addr)
			p, _ := config(addr, strings.ReplaceAll(threeKinds, "PORT", port))
			return []string{filepath.Join(dir, "healthbridge"), "--config", p}
		}},
		{"lean, exec true", func(addr string) []string {
			p, _ := config(addr, execCheck)
			return []string{filepath.Join(dir, "healthbridge-lean"), "--config", p}
		}},
	}
	type mem struct{ rss, anon, file []float64 }
	res := make([]mem, len(targets))
	for r := 0; r < rounds; r++ {
		// Every target of a round idles at the same time, side by side:
		// settling takes long (the first collections come after tens of
		// seconds at idle), and idle processes do not disturb each other.
		procs := make([]*exec.Cmd, len(targets))
		for i, t := range targets {
			cmd, err := start(t.argv)
			if err != nil {
				stopAll(procs)
				return fmt.Errorf("%s: %w", t.name, err)
			}
			procs[i] = cmd
		}
		time.Sleep(settle)
		for i, t := range targets {
			rss, anon, file, err := read(procs[i].Process.Pid)
			if err != nil {
				stopAll(procs)
				return fmt.Errorf("%s: %w", t.name, err)
			}
			res[i].rss = append(res[i].rss, rss)
			res[i].anon = append(res[i].anon, anon)
			res[i].file = append(res[i].file, file)
		}
		stopAll(procs)
	}
	fmt.Printf("idle memory after %v (median of %d, min-max), MB:\n", settle, rounds)
	base := measure.Median(res[0].rss)
	for i, t := range targets {
		fmt.Printf("  %-22s VmRSS %5.1f (%.1f-%.1f)  RssAnon %4.1f  RssFile %4.1f  VmRSS ratio to bare %.2f\n", t.name,
			measure.Median(res[i].rss), slices.Min(res[i].rss), slices.Max(res[i].rss), measure.Median(res[i].anon), measure.Median(res[i].file), measure.Median(res[i].rss)/base)
	}
	return nil
}

// start starts argv on a free loopback address, waits until it answers
// /readyz 200, and serves it a few requests.
func start(argv func(addr string) []string) (*exec.Cmd, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	a := argv(addr)
	cmd := exec.Command(a[0], a[1:]...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ok := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok = true
				break
			}
		}
	}
	if !ok {
		stopAll([]*exec.Cmd{cmd})
		return nil, fmt.Errorf("%s never answered /readyz 200", a[0])
	}
	for range 10 {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return cmd, nil
}

func stopAll(cmds []*exec.Cmd) {
	for _, c := range cmds {
		if c != nil {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
}

// read returns pid's VmRSS, RssAnon and RssFile in MB.
func read(pid int) (float64, float64, float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	kb := func(key string) float64 {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, key+":") {
				f := strings.Fields(line)
				v, _ := strconv.ParseFloat(f[1], 64)
				return v / 1000
			}
		}
		return 0
	}
	return kb("VmRSS"), kb("RssAnon"), kb("RssFile"), nil
}

// Command probe compares `healthbridge probe http://…` as a whole process
// with `curl -fsS` on the same URL: wall time per run and peak resident
// memory (ru_maxrss), each the median over -n runs, alternating the two so
// machine drift affects both alike. It reports healthbridge/curl ratios.
//
//	go run ./bench/probe [-n 200]
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 200, "runs of each command")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type sample struct {
	wall  time.Duration
	maxKB int64
}

func run(n int) error {
	curl, err := exec.LookPath("curl")
	if err != nil {
		return fmt.Errorf("curl not found: %w", err)
	}
	dir, err := os.MkdirTemp("", "hb-bench-probe")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hb := filepath.Join(dir, "healthbridge")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", hb, "./cmd/healthbridge")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build (run from the repository root): %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	url := "http://" + ln.Addr().String() + "/ready"

	cmds := map[string][]string{
		"healthbridge": {hb, "probe", url},
		"curl":         {curl, "-fsS", "-o", "/dev/null", url},
	}
	samples := map[string][]sample{}
	for i := 0; i < n; i++ {
		for _, name := range []string{"curl", "healthbridge"} {
			s, err := once(cmds[name])
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			samples[name] = append(samples[name], s)
		}
	}
	h, c := median(samples["healthbridge"]), median(samples["curl"])
	fmt.Printf("curl -fsS:          median %v, peak RSS %d KiB\n", c.wall, c.maxKB)
	fmt.Printf("healthbridge probe: median %v, peak RSS %d KiB\n", h.wall, h.maxKB)
	fmt.Printf("ratio healthbridge/curl: time %.2f, peak memory %.2f (%d runs each)\n",
		float64(h.wall)/float64(c.wall), float64(h.maxKB)/float64(c.maxKB), n)
	return nil
}

func once(argv []string) (sample, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return sample{}, fmt.Errorf("%v: %s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: time.Since(start), maxKB: ru.Maxrss}, nil
}

func median(s []sample) sample {
	w := make([]time.Duration, len(s))
	m := make([]int64, len(s))
	for i := range s {
		w[i], m[i] = s[i].wall, s[i].maxKB
	}
	sort.Slice(w, func(i, j int) bool { return w[i] < w[j] })
	sort.Slice(m, func(i, j int) bool { return m[i] < m[j] })
	return sample{wall: w[len(w)/2], maxKB: m[len(m)/2]}
}

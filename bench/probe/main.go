// Command probe compares `healthbridge probe http://…` as a whole process,
// from the full binary and from healthbridge-probe (the lean one-shot
// binary for scratch images), with `curl -fsS` on the same URL: wall time
// per run and peak resident memory (ru_maxrss), each the median over -n
// runs, alternating the three so machine drift affects all alike. It
// reports the ratios to curl.
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
	hbp := filepath.Join(dir, "healthbridge-probe")
	for _, b := range [][]string{
		{"-o", hb, "./cmd/healthbridge"},
		{"-tags", "lean nethttpomithttp2", "-gcflags=all=-l", "-o", hbp, "./cmd/healthbridge-probe"},
	} {
		build := exec.Command("go", append([]string{"build", "-trimpath", "-ldflags=-s -w"}, b...)...)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build (run from the repository root): %v\n%s", err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	url := "http://" + ln.Addr().String() + "/ready"

	cmds := map[string][]string{
		"healthbridge probe": {hb, "probe", url},
		"healthbridge-probe": {hbp, url},
		"curl -fsS":          {curl, "-fsS", "-o", "/dev/null", url},
	}
	order := []string{"curl -fsS", "healthbridge probe", "healthbridge-probe"}
	samples := map[string][]sample{}
	for i := 0; i < n; i++ {
		for _, name := range order {
			s, err := once(cmds[name])
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			samples[name] = append(samples[name], s)
		}
	}
	c := median(samples["curl -fsS"])
	for _, name := range order {
		m := median(samples[name])
		fmt.Printf("%-20s median %v, peak RSS %d KiB; ratio to curl: time %.2f, peak memory %.2f (%d runs)\n",
			name+":", m.wall, m.maxKB, float64(m.wall)/float64(c.wall), float64(m.maxKB)/float64(c.maxKB), n)
	}
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

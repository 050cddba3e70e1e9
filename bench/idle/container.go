package main

import (
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
	"github.com/healthbridge/healthbridge/internal/cgmem"
)

// subject is one container of a round: its files (paths on the host,
// copied to /bin), its command line (the address to listen on is
// substituted for ADDR), its config, and an image HEALTHCHECK or none.
type subject struct {
	name   string
	bin    string // the binary, copied to /bin/app
	args   []string
	config string // written to /etc/healthbridge.yaml when set
	// hc is the image's HEALTHCHECK command (exec form, ADDR replaced by
	// the subject's address), run every 10 s as deploy/Dockerfile's; none
	// when empty.
	hc []string
	// files are more files for /bin: name there → path on the host.
	files map[string]string
	addr  string   // the address it listens on, chosen when its image is built
	env   []string // the container's environment, NAME=value
}

// cgroupMem is what the kubelet and `docker stats` read of a container's
// memory cgroup, in MB.
type cgroupMem struct {
	workingSet, anon, activeFile, inactiveFile, vmRSS float64
}

// runContainers measures each subject as a Docker container, side by
// side, reading the container's memory cgroup as the kubelet does:
// working set = usage − inactive file pages (cgroup v1:
// memory.usage_in_bytes − total_inactive_file; v2: memory.current −
// inactive_file), with its anonymous memory (total_rss / anon) and
// active and inactive file pages, and VmRSS of the main process for the
// record; at 5 s and at settle. Each image carries its own copy of its
// binary (a layer of its own) so that no two subjects share page-cache
// pages, and the page cache is dropped before each round.
func runContainers(dir string, settle time.Duration, rounds int) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("no static busybox (apt-get install busybox-static): %v", err)
	}
	const execCheck = "  - {name: t, exec: {command: [\"true\"]}, periodSeconds: 1}\n"
	// The shipped images' HEALTHCHECK (healthbridge-healthcheck), the same
	// by the full program (`healthbridge healthcheck`), and the same request
	// by busybox's wget, a static C client: the floor of what a
	// HEALTHCHECK exec costs.
	hcBin := map[string]string{"healthbridge-healthcheck": filepath.Join(dir, "healthbridge-healthcheck")}
	shippedHC := []string{"/bin/healthbridge-healthcheck", "--timeout", "2s"}
	fullHC := []string{"/bin/app", "healthcheck", "--timeout", "2s"}
	wgetHC := []string{"/bin/busybox", "wget", "-q", "-O", "/dev/null", "-T", "2", "http://ADDR/livez"}
	threeKinds := execCheck + "  - {name: tcp, tcpSocket: {port: PORT}, periodSeconds: 1}\n  - {name: http, httpGet: {port: PORT, path: /livez}, periodSeconds: 1}\n"
	full, lean, bare := filepath.Join(dir, "healthbridge"), filepath.Join(dir, "healthbridge-lean"), filepath.Join(dir, "bare")
	subjects := []subject{
		{name: "bare net/http \"ok\"", bin: bare, args: []string{"ADDR"}},
		{name: "bare + exec loop", bin: bare, args: []string{"ADDR", "exec"}},
		{name: "lean, exec true", bin: lean, args: []string{"--config", "/etc/healthbridge.yaml"}, config: execCheck},
		{name: "lean, exec, + HEALTHCHECK", bin: lean, args: []string{"--config", "/etc/healthbridge.yaml"}, config: execCheck, hc: shippedHC, files: hcBin},
		{name: "lean, exec, + HC (full prog)", bin: lean, args: []string{"--config", "/etc/healthbridge.yaml"}, config: execCheck, hc: fullHC},
		{name: "lean, exec, + HC (wget)", bin: lean, args: []string{"--config", "/etc/healthbridge.yaml"}, config: execCheck, hc: wgetHC},
		{name: "lean, exec true, GOGC=50", bin: lean, args: []string{"--config", "/etc/healthbridge.yaml"}, config: execCheck, env: []string{"GOGC=50"}},
		{name: "full, exec+tcp+http", bin: full, args: []string{"--config", "/etc/healthbridge.yaml"}, config: threeKinds},
		{name: "full, 3 kinds, GOGC=50", bin: full, args: []string{"--config", "/etc/healthbridge.yaml"}, config: threeKinds, env: []string{"GOGC=50"}},
		{name: "full, exec+tcp+http, + HC", bin: full, args: []string{"--config", "/etc/healthbridge.yaml"}, config: threeKinds, hc: shippedHC, files: hcBin},
		{name: "run -- sleep (init)", bin: full, args: []string{"run", "--", "/bin/sleep", "1000000"}},
		{name: "run -- sleep (init), lean", bin: lean, args: []string{"run", "--", "/bin/sleep", "1000000"}},
	}
	pid := os.Getpid()
	images := make([]string, len(subjects))
	for i := range subjects {
		s := &subjects[i]
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		s.addr = ln.Addr().String()
		ln.Close()
		images[i] = fmt.Sprintf("healthbridge-bench-idle/s%d:%d", i, pid)
		if err := buildSubject(filepath.Join(dir, fmt.Sprintf("ctx%d", i)), images[i], *s, bb); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		defer exec.Command("docker", "rmi", "--force", images[i]).Run() //nolint:errcheck
	}
	early := make([][]cgroupMem, len(subjects))
	late := make([][]cgroupMem, len(subjects))
	for r := 0; r < rounds; r++ {
		_ = exec.Command("sync").Run()
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200); err != nil {
			fmt.Fprintln(os.Stderr, "idle: cannot drop the page cache (not root?):", err)
		}
		ids := make([]string, len(subjects))
		stop := func() {
			for _, id := range ids {
				if id != "" {
					_ = exec.Command("docker", "rm", "-f", id).Run()
				}
			}
		}
		started := time.Now()
		for i, s := range subjects {
			id, err := startSubject(images[i], s)
			if err != nil {
				stop()
				return fmt.Errorf("%s: %w", s.name, err)
			}
			ids[i] = id
		}
		read := func(into [][]cgroupMem) error {
			for i, s := range subjects {
				m, err := readContainer(ids[i])
				if err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				into[i] = append(into[i], m)
			}
			return nil
		}
		time.Sleep(time.Until(started.Add(5 * time.Second)))
		if err := read(early); err != nil {
			stop()
			return err
		}
		time.Sleep(time.Until(started.Add(settle)))
		if err := read(late); err != nil {
			stop()
			return err
		}
		stop()
	}
	med := func(ms []cgroupMem, f func(cgroupMem) float64) (float64, float64, float64) {
		var v []float64
		for _, m := range ms {
			v = append(v, f(m))
		}
		return measure.Median(v), slices.Min(v), slices.Max(v)
	}
	ws := func(m cgroupMem) float64 { return m.workingSet }
	floor, _, _ := med(late[1], ws)
	bareWS, _, _ := med(late[0], ws)
	fmt.Printf("container working set (as the kubelet computes it: cgroup usage − inactive file), FROM scratch images side by side, page cache dropped first; median of %d (min-max), MB:\n", rounds)
	fmt.Printf("  %-28s %18s %18s %7s %7s %7s %7s %9s %9s\n", "subject", "WS at 5 s", "WS at "+settle.String(), "anon", "active", "inact.", "VmRSS", "÷ bare+x", "÷ bare")
	for i, s := range subjects {
		e, emin, emax := med(early[i], ws)
		l, lmin, lmax := med(late[i], ws)
		anon, _, _ := med(late[i], func(m cgroupMem) float64 { return m.anon })
		act, _, _ := med(late[i], func(m cgroupMem) float64 { return m.activeFile })
		inact, _, _ := med(late[i], func(m cgroupMem) float64 { return m.inactiveFile })
		rss, _, _ := med(late[i], func(m cgroupMem) float64 { return m.vmRSS })
		fmt.Printf("  %-28s %5.1f (%4.1f-%4.1f) %5.1f (%4.1f-%4.1f) %7.1f %7.1f %7.1f %7.1f %8.2f× %8.2f×\n",
			s.name, e, emin, emax, l, lmin, lmax, anon, act, inact, rss, l/floor, l/bareWS)
	}
	return nil
}

// buildSubject writes the subject's files into ctx and builds its image.
func buildSubject(ctx, tag string, s subject, busybox string) error {
	root := filepath.Join(ctx, "root")
	for _, d := range []string{"bin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{s.bin: "bin/app", busybox: "bin/busybox"}
	for name, src := range s.files {
		files[src] = "bin/" + name
	}
	for src, dst := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, dst), b, 0o755); err != nil {
			return err
		}
	}
	for _, a := range []string{"true", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return err
		}
	}
	// A file unique to the subject in the same layer: no two images share
	// the layer, so no two containers share its binary's page-cache pages.
	if err := os.WriteFile(filepath.Join(root, "etc", "subject"), []byte(tag+"\n"), 0o644); err != nil {
		return err
	}
	if s.config != "" {
		if err := os.WriteFile(filepath.Join(root, "etc", "healthbridge.yaml"), []byte("listen: ADDR\nchecks:\n"+s.config), 0o644); err != nil {
			return err
		}
	}
	df := "FROM scratch\nCOPY root/ /\nENV PATH=/bin\n"
	if s.config != "" {
		df += "ENV HEALTHBRIDGE_CONFIG=/etc/healthbridge.yaml\n"
	}
	if len(s.hc) > 0 {
		// deploy/Dockerfile's HEALTHCHECK timings.
		var q []string
		for _, a := range s.hc {
			q = append(q, strconv.Quote(strings.ReplaceAll(a, "ADDR", s.addr)))
		}
		df += "HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD [" + strings.Join(q, ", ") + "]\n"
	}
	df += "ENTRYPOINT [\"/bin/app\"]\n"
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, ctx).CombinedOutput(); err != nil {
		return fmt.Errorf("docker build: %v\n%s", err, out)
	}
	return nil
}

// startSubject runs the subject's container on the host's network on a
// free loopback address (its config, with that address, mounted over the
// image's), waits until it answers /readyz 200 and serves it ten
// requests; `run` without a config serves nothing and is only started.
func startSubject(image string, s subject) (string, error) {
	addr := s.addr
	args := []string{"run", "-d", "--network", "host"}
	for _, e := range s.env {
		args = append(args, "-e", e)
	}
	if s.config != "" {
		f, err := os.CreateTemp("", "idle-config-*.yaml")
		if err != nil {
			return "", err
		}
		_, port, _ := net.SplitHostPort(addr)
		body := "listen: " + addr + "\nchecks:\n" + strings.ReplaceAll(s.config, "PORT", port)
		if _, err := f.WriteString(body); err != nil {
			return "", err
		}
		f.Close()
		_ = os.Chmod(f.Name(), 0o644)
		args = append(args, "-v", f.Name()+":/etc/healthbridge.yaml:ro")
	}
	args = append(args, image)
	for _, a := range s.args {
		args = append(args, strings.ReplaceAll(a, "ADDR", addr))
	}
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker run: %v: %s", err, out)
	}
	id := strings.TrimSpace(string(out))
	if s.args[0] == "run" {
		return id, nil // no server: healthbridge run without --config
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
			_ = exec.Command("docker", "rm", "-f", id).Run()
			return "", fmt.Errorf("never answered /readyz 200:\n%s", logs)
		}
	}
	for range 10 {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return id, nil
}

// readContainer reads the container's memory cgroup (v1 or v2) and its
// main process's VmRSS.
func readContainer(id string) (cgroupMem, error) {
	out, err := exec.Command("docker", "inspect", "--format", "{{.State.Pid}}", id).Output()
	if err != nil {
		return cgroupMem{}, err
	}
	pid := strings.TrimSpace(string(out))
	if _, err := os.Stat("/proc/" + pid); err != nil || pid == "0" {
		logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
		return cgroupMem{}, fmt.Errorf("the container is not running: %v\n%s", err, logs)
	}
	var m cgroupMem
	if rss, _, _, err := read(atoi(pid)); err == nil {
		m.vmRSS = rss
	}
	g, err := cgmem.OfPid(atoi(pid))
	if err != nil {
		return m, err
	}
	u, err := g.Read()
	if err != nil {
		return m, err
	}
	m.workingSet, m.anon, m.activeFile, m.inactiveFile = u.WorkingSet/1e6, u.Anon/1e6, u.ActiveFile/1e6, u.InactiveFile/1e6
	return m, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

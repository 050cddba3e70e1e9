//go:build linux

// The tests judge pids through /proc: Linux only. On other systems Inspect
// refuses to judge a pid (see process_other.go).

package health

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// zombiePid returns the pid of a child that has exited and is not reaped.
func zombiePid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	pid := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if strings.Contains(string(b), ") Z ") {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("child did not become a zombie")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deadPid returns a pid that is not running.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestInspectEdgeCases(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name    string
		pid     *string // nil: no file
		errFile *string
		opts    InspectOptions
		healthy bool
		reason  string
	}{
		{"healthy", p(self + "\n"), p("0\n"), InspectOptions{}, true, "pid " + self + ", error 0"},
		{"no pid file: not started", nil, p("0\n"), InspectOptions{}, false, "not started: "},
		{"empty pid file", p(""), p("0\n"), InspectOptions{}, false, "pid file is empty"},
		{"garbage pid", p("hello\n"), p("0\n"), InspectOptions{}, false, `pid file holds "hello", not a number`},
		{"half-written pid", p(self[:1]), p("0\n"), InspectOptions{}, false, "without a final newline: half-written?"},
		{"huge pid file", p(strings.Repeat("9", 100)), p("0\n"), InspectOptions{}, false, "longer than 64 bytes"},
		{"negative pid", p("-4\n"), p("0\n"), InspectOptions{}, false, "pid file holds -4, not a process id"},
		{"pid not running", p("DEAD\n"), p("0\n"), InspectOptions{}, false, "is not running"},
		{"zombie pid", p("ZOMBIE\n"), p("0\n"), InspectOptions{}, false, "is a zombie"},
		{"dead pid, pid check off", p("DEAD\n"), p("0\n"), InspectOptions{SkipPid: true}, true, ", error 0"},
		{"no error file", p(self + "\n"), nil, InspectOptions{}, false, "no state set yet"},
		{"empty error file", p(self + "\n"), p(""), InspectOptions{}, false, "error file is empty"},
		{"garbage error", p(self + "\n"), p("ok\n"), InspectOptions{}, false, `error file holds "ok", not a number`},
		{"half-written error", p(self + "\n"), p("0"), InspectOptions{}, false, "error file holds \"0\" without a final newline"},
		{"error code", p(self + "\n"), p("3\n"), InspectOptions{}, false, "unhealthy: error code 3"},
		{"fresh heartbeat", p(self + "\n"), p("0\n"), InspectOptions{MaxAge: time.Minute}, true, ", error 0"},
		// Now is set to the error file's mtime plus two minutes once it is
		// written (see below), so the rounded age is exact.
		{"stale heartbeat", p(self + "\n"), p("0\n"), InspectOptions{MaxAge: time.Minute, Now: staleMarker}, false, "stale: state last written 2m0s ago"},
		{"future mtime counts as written now", p(self + "\n"), p("0\n"), InspectOptions{MaxAge: time.Minute, Now: futureMarker}, true, ", error 0"},
		{"pid file written before its process started: pid reused", p("YOUNG\n"), p("0\n"), InspectOptions{}, false, "it is not the writer (pid reused)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "unit")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.pid != nil {
				c := strings.ReplaceAll(*tt.pid, "DEAD", strconv.Itoa(deadPid(t)))
				if strings.Contains(c, "ZOMBIE") {
					c = strings.ReplaceAll(c, "ZOMBIE", strconv.Itoa(zombiePid(t)))
				}
				young := strings.Contains(c, "YOUNG")
				if young {
					c = strings.ReplaceAll(c, "YOUNG", strconv.Itoa(livePid(t)))
				}
				write(t, dir, PidFile, c)
				if young { // as if written an hour before that process started
					hourAgo := time.Now().Add(-time.Hour)
					if err := os.Chtimes(filepath.Join(dir, PidFile), hourAgo, hourAgo); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tt.errFile != nil {
				write(t, dir, ErrorFile, *tt.errFile)
				errPath := filepath.Join(dir, ErrorFile)
				switch tt.opts.Now {
				case staleMarker:
					fi, err := os.Stat(errPath)
					if err != nil {
						t.Fatal(err)
					}
					tt.opts.Now = fi.ModTime().Add(2 * time.Minute)
				case futureMarker:
					future := time.Now().AddDate(70, 0, 0)
					if err := os.Chtimes(errPath, future, future); err != nil {
						t.Fatal(err)
					}
					tt.opts.Now = time.Time{}
				}
			}
			v, err := Inspect(dir, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if v.Healthy != tt.healthy || !strings.Contains(v.Reason, tt.reason) {
				t.Fatalf("healthy %v reason %q; want %v containing %q", v.Healthy, v.Reason, tt.healthy, tt.reason)
			}
		})
	}
}

func p(s string) *string { return &s }

// Markers in InspectOptions.Now that the table test replaces once the
// files are written.
var (
	staleMarker  = time.Unix(1, 0)
	futureMarker = time.Unix(2, 0)
)

// livePid starts a process that lives until the end of the test.
func livePid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// TestFutureMtimeIsFreshOnce: an error file with an mtime 70 years ahead,
// never written again, is fresh when first seen and then ages on the
// monotonic clock like any other: stale after maxAge.
func TestFutureMtimeIsFreshOnce(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, PidFile, strconv.Itoa(os.Getpid())+"\n")
	write(t, dir, ErrorFile, "0\n")
	future := time.Now().AddDate(70, 0, 0)
	if err := os.Chtimes(filepath.Join(dir, ErrorFile), future, future); err != nil {
		t.Fatal(err)
	}
	var seen MtimeTracker
	t0 := time.Now()
	opts := InspectOptions{MaxAge: 3 * time.Second, FirstSeen: seen.FirstSeen, Now: t0}
	if v, err := Inspect(dir, opts); err != nil || !v.Healthy {
		t.Fatalf("first look: %+v %v", v, err)
	}
	opts.Now = t0.Add(2 * time.Second)
	if v, err := Inspect(dir, opts); err != nil || !v.Healthy {
		t.Fatalf("2s later: %+v %v", v, err)
	}
	opts.Now = t0.Add(11 * time.Second)
	if v, err := Inspect(dir, opts); err != nil || v.Healthy || !strings.Contains(v.Reason, "stale: state last written 11s ago") {
		t.Fatalf("11s later: %+v %v", v, err)
	}
	// A new write (a new future mtime) is fresh again, once.
	future = future.Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, ErrorFile), future, future); err != nil {
		t.Fatal(err)
	}
	if v, err := Inspect(dir, opts); err != nil || !v.Healthy {
		t.Fatalf("after a new write: %+v %v", v, err)
	}
}

func TestInspectMissingDirectory(t *testing.T) {
	v, err := Inspect(filepath.Join(t.TempDir(), "nope"), InspectOptions{})
	if err != nil || v.Healthy || !strings.HasPrefix(v.Reason, "not started") {
		t.Fatalf("%+v %v", v, err)
	}
}

func TestInspectUnreadableIsAnError(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, PidFile, strconv.Itoa(os.Getpid())+"\n")
	if err := os.Chmod(filepath.Join(dir, PidFile), 0); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Open(filepath.Join(dir, PidFile)); err == nil {
		f.Close()
		t.Skip("running as root: permissions are not enforced")
	}
	if _, err := Inspect(dir, InspectOptions{}); err == nil {
		t.Fatal("an unreadable pid file must be an error (unknown), not a verdict")
	}
}

func TestWritesAreAtomicUnderConcurrentReads(t *testing.T) {
	u, err := NewUnit(t.TempDir(), "w")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := u.Set(0); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := u.Set((i + w) % 2 * 7); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 2000 {
		v, err := Inspect(u.Dir(), InspectOptions{})
		if err != nil || (v.Code != 0 && v.Code != 7) || (!v.Healthy && v.Code != 7) {
			close(stop)
			wg.Wait()
			t.Fatalf("read a torn state: %+v %v", v, err)
		}
	}
	close(stop)
	wg.Wait()
	entries, _ := os.ReadDir(u.Dir())
	if len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestUnitNames(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := NewUnit("/run/x", bad); err == nil {
			t.Errorf("NewUnit(%q) accepted", bad)
		}
	}
	if Set(0) != ErrNotLoaded && std.Load() == nil {
		t.Error("package Set before Load must be ErrNotLoaded")
	}
}

func TestDefaultRunDir(t *testing.T) {
	t.Setenv(EnvRunDir, "")
	t.Setenv("HOSTNAME", "pod-7")
	if d := DefaultRunDir(); d != "/run/pod-7" {
		t.Fatalf("%q", d)
	}
	t.Setenv(EnvRunDir, "/shared/run")
	if d := DefaultRunDir(); d != "/shared/run" {
		t.Fatalf("%q", d)
	}
}

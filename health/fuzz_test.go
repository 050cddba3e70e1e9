//go:build linux

package health

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzInspect: whatever bytes an application, a crash or a full disk
// leaves in pid and error, and whatever a /proc stat line holds, Inspect
// answers without a panic, and says healthy only when pid holds a positive
// decimal number and a newline, that process is running and no zombie,
// and error holds 0 and a newline.
func FuzzInspect(f *testing.F) {
	f.Add([]byte("42\n"), []byte("0\n"), []byte("42 (app) S 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n"))
	f.Add([]byte("42"), []byte("0\n"), []byte("42 (app) S 1"))
	f.Add([]byte("-1\n"), []byte("3\n"), []byte("42 (a) b) Z 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n"))
	f.Add([]byte("+42\n"), []byte("00\n"), []byte(""))
	f.Add([]byte("42\n\n"), []byte(" 0\n"), []byte("42 (app) R 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x 0 0\n"))
	f.Fuzz(func(t *testing.T, pidFile, errFile, stat []byte) {
		dir, root := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, PidFile), pidFile, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ErrorFile), errFile, 0o644); err != nil {
			t.Fatal(err)
		}
		pidText, pidLine := strings.CutSuffix(string(pidFile), "\n")
		pid, perr := strconv.Atoi(pidText)
		if perr == nil && pid > 0 && pid < 1<<22 {
			_ = os.MkdirAll(filepath.Join(root, strconv.Itoa(pid)), 0o755)
			_ = os.WriteFile(filepath.Join(root, strconv.Itoa(pid), "stat"), stat, 0o644)
			// Booted long ago: the process started before the pid file.
			_ = os.WriteFile(filepath.Join(root, "stat"), []byte("cpu 0\nbtime 0\n"), 0o644)
		}
		v, err := Inspect(dir, InspectOptions{ProcRoot: root, MaxAge: time.Hour})
		if err != nil || !v.Healthy {
			return
		}
		p, _, _ := parseStat(stat) // a starttime that is no number leaves the pid-reuse test out, not the process
		code, cerr := strconv.Atoi(strings.TrimSuffix(string(errFile), "\n"))
		switch {
		case !pidLine || perr != nil || pid <= 0:
			t.Fatalf("healthy with pid file %q", pidFile)
		case !p.exists || p.zombie:
			t.Fatalf("healthy with stat %q", stat)
		case !strings.HasSuffix(string(errFile), "\n") || cerr != nil || code != 0:
			t.Fatalf("healthy with error file %q", errFile)
		case v.Pid != pid || v.Reason != "pid "+strconv.Itoa(pid)+", error 0":
			t.Fatalf("healthy verdict %+v for pid %d", v, pid)
		}
	})
}

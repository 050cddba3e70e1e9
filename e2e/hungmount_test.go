package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

// EnvTestFUSE, set by .ci/run when the machine has /dev/fuse, makes a FUSE
// mount that cannot be made a test failure instead of a skip.
const envTestFUSE = "HEALTHBRIDGE_TEST_FUSE"

// hungRoot is the root of a FUSE file system that never answers a lookup
// until released: the faithful stand-in for a hung NFS server. Once the
// kernel has handed the request to the server, the process that asked
// (stat) waits uninterruptibly: SIGKILL cannot end it (fs/fuse/dev.c,
// request_wait_answer).
type hungRoot struct {
	fs.Inode
	release chan struct{}
	once    sync.Once
}

var _ fs.NodeLookuper = (*hungRoot)(nil)

func (r *hungRoot) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	<-r.release // deliberately deaf to ctx (the kernel's interrupt)
	if name != "x" {
		return nil, syscall.ENOENT
	}
	return r.NewInode(ctx, &fs.MemRegularFile{Data: []byte("x")}, fs.StableAttr{Mode: syscall.S_IFREG}), 0
}

func (r *hungRoot) unhang() { r.once.Do(func() { close(r.release) }) }

// mountHung mounts a hungRoot on a new directory, or skips the test where
// FUSE cannot be mounted (no /dev/fuse, no privilege).
func mountHung(t *testing.T) (string, *hungRoot) {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv(envTestFUSE) != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (needs /dev/fuse and fuse3 from Debian; .ci/run sets "+envTestFUSE+" when it has them)", args...)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		skip("no /dev/fuse: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "hung")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root := &hungRoot{release: make(chan struct{})}
	srv, err := fs.Mount(dir, root, &fs.Options{MountOptions: fuse.MountOptions{
		DirectMount: true, FsName: "healthbridge-hung", Name: "hung",
	}})
	if err != nil {
		skip("cannot mount FUSE: %v", err)
	}
	t.Cleanup(func() {
		root.unhang()
		for i := 0; i < 50; i++ {
			if srv.Unmount() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not unmount %s", dir)
	})
	return dir, root
}

// processesRunning counts live processes whose command line contains arg.
func processesRunning(arg string) int {
	n := 0
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), arg) {
			n++
		}
	}
	return n
}

// TestUnkillableProbeOnHungMount: stat on a mount that never answers, with
// timeoutSeconds 1. A failure is recorded at the timeout (plus the grace
// healthbridge gives a cancelled probe), each further period records that
// the previous run is still terminating, no second stat is started, the
// server keeps answering at once, and probing resumes when stat finally
// returns.
func TestUnkillableProbeOnHungMount(t *testing.T) {
	dir, root := mountHung(t)
	target := filepath.Join(dir, "x")
	cfg := testutil.WriteFile(t, "hb.yaml", `listen: 127.0.0.1:0
exposeOutput: true
checks:
  - name: nfs
    exec: {command: [stat, `+target+`]}
    timeoutSeconds: 1
    periodSeconds: 2
    failureThreshold: 1
`)
	hb := testutil.Start(t, bin(t), "--config", cfg)
	started := time.Now() // it logged "serving": its first run has begun
	code, body := hb.WaitFor(t, "/livez/nfs", func(code int, _ string) bool { return code != 200 })
	took := time.Since(started)
	// The first failure is the abandoned run's; the check's second run may
	// follow at once (the first wait is shortened by the check's random
	// phase) and record "still terminating" before this poll looks, so the
	// first failure is read from the log of the state change it caused.
	if code != 503 || !strings.Contains(body, "Health check exceeded timeout (1s): the probe did not stop when cancelled") && !strings.Contains(body, "is still terminating") {
		t.Fatalf("at the timeout: %d %q", code, body)
	}
	first := `to=unhealthy outcome=failure output="Health check exceeded timeout (1s): the probe did not stop when cancelled`
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(hb.Logs(), first); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) { // the line follows the result it logs by microseconds
			t.Fatalf("the first failure was not the abandoned run's timeout: %s", hb.Logs())
		}
	}
	testutil.Report(t, "unkillable probe (stat on a hung FUSE mount, timeout 1s) -> /livez 503 after %v", took.Round(time.Millisecond))
	_, body = hb.WaitFor(t, "/livez/nfs", func(_ int, body string) bool { return strings.Contains(body, "is still terminating") })
	if !strings.Contains(body, "the previous run, started ") {
		t.Fatalf("while stuck: %q", body)
	}
	if n := processesRunning(target); n != 1 {
		t.Fatalf("%d stat processes on the hung mount, want exactly 1", n)
	}
	// The serving path never waits on a probe.
	t0 := time.Now()
	if code, _ := hb.Get(t, "/readyz"); code != 503 {
		t.Fatalf("/readyz %d", code)
	}
	testutil.Report(t, "/readyz answered in %v while a probe was stuck", time.Since(t0).Round(time.Microsecond))

	root.unhang()
	hb.WaitFor(t, "/livez/nfs", func(code int, _ string) bool { return code == 200 })
	if n := processesRunning(target); n != 0 {
		t.Fatalf("%d stat processes left after the mount answered", n)
	}
}

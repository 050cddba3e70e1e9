package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

// pty is a pseudo-terminal pair: the test holds the master side, as a
// terminal emulator does; a process started on the slave side has it as
// its controlling terminal.
type pty struct {
	master, slave *os.File
	mu            sync.Mutex
	out           strings.Builder // all the master read
	changed       chan struct{}   // closed and replaced at each read
}

func openPTY(t *testing.T) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &pty{master: m, slave: s, changed: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { m.Close(); s.Close() })
	return p
}

// waitOutput waits (bounded) until the terminal has shown s.
func (p *pty) waitOutput(t *testing.T, s string) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		got, changed := p.out.String(), p.changed
		p.mu.Unlock()
		if strings.Contains(got, s) {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("the terminal never showed %q; it shows:\n%s", s, got)
		}
	}
}

// startOnPTY starts `healthbridge run ARGS` in a new session whose
// controlling terminal is p, in the terminal's foreground, as a shell
// starts a command.
func startOnPTY(t *testing.T, p *pty, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin(t), append([]string{"run"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.slave, p.slave, p.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.KillTree(cmd.Process.Pid); _, _ = cmd.Process.Wait() })
	return cmd
}

// TestRunChildReadsTheTerminal: with --signal-group the child leads its
// own process group; it must also be the terminal's foreground group, or
// its first read of the terminal stops it (SIGTTIN) and healthbridge
// waits forever.
func TestRunChildReadsTheTerminal(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	p := openPTY(t)
	cmd := startOnPTY(t, p, "--signal-group", "--", "python3", "-c",
		`import sys; print("ready", flush=True); print("read:" + sys.stdin.readline().strip(), flush=True)`)
	p.waitOutput(t, "ready")
	if _, err := p.master.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	p.waitOutput(t, "read:hello")
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestRunCtrlCReachesTheChildOnce: a Ctrl-C on the terminal is one SIGINT
// for the child, as under tini: the terminal sends it to the foreground
// group, which is the child's alone, and healthbridge has nothing to
// forward.
func TestRunCtrlCReachesTheChildOnce(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	for _, flags := range [][]string{nil, {"--signal-group"}} {
		t.Run(strings.Join(append([]string{"flags"}, flags...), " "), func(t *testing.T) {
			p := openPTY(t)
			script := `
import signal, sys, time
n = 0
def on_int(s, f):
    global n
    n += 1
    print("int", n, flush=True)
def on_usr1(s, f):
    print("ints=%d" % n, flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, on_int)
signal.signal(signal.SIGUSR1, on_usr1)
print("ready", flush=True)
while True:
    time.sleep(0.05)
`
			cmd := startOnPTY(t, p, append(flags, "--", "python3", "-c", script)...)
			p.waitOutput(t, "ready")
			if _, err := p.master.Write([]byte{0x03}); err != nil { // ^C
				t.Fatal(err)
			}
			p.waitOutput(t, "int 1")
			// SIGUSR1 goes through healthbridge, after any SIGINT it had
			// to forward: signals are forwarded in order, and a pending
			// SIGINT is delivered before a pending SIGUSR1.
			if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			p.waitOutput(t, "ints=")
			if code := waitExit(t, cmd, 20*time.Second); code != 0 {
				t.Fatalf("exit %d", code)
			}
			p.mu.Lock()
			out := p.out.String()
			p.mu.Unlock()
			if !strings.Contains(out, "ints=1") {
				t.Fatalf("the child counted more than one SIGINT for one Ctrl-C:\n%s", out)
			}
		})
	}
}

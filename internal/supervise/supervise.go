// Package supervise runs healthbridge's child in `healthbridge run -- CMD`:
// healthbridge as a container's init, as tini and dumb-init are. The child
// gets healthbridge's stdin, stdout, stderr, environment and working
// directory; the signals a container receives are forwarded to it (or to
// its whole process group); its exit code becomes healthbridge's, or 128+N
// when it died of signal N (the shell's convention, which Docker and
// Kubernetes report).
//
// The child always leads its own process group and, when healthbridge's
// stdin is the terminal it runs in the foreground of, it is made the
// terminal's foreground process group (tini's isolate_child: setpgid +
// tcsetpgrp, with SIGTTIN and SIGTTOU ignored in healthbridge). A Ctrl-C
// then reaches the child once, from the terminal, and a child that reads
// the terminal is not stopped by SIGTTIN. Forwarding to the child alone or
// to its whole group (--signal-group) only changes where forwarded signals
// go, as tini's -g.
//
// The child is started through internal/proc, so the orphan reaper, which
// healthbridge runs as PID 1 or as a child subreaper, never steals its exit
// status.
package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/healthbridge/healthbridge/internal/proc"
)

// Forwarded are the signals passed on to the child, as tini and dumb-init
// pass them.
var Forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// Child is the supervised process.
type Child struct {
	cmd     *exec.Cmd
	group   bool
	started time.Time
	done    chan struct{}
	code    int // valid once done is closed

	// mu guards reaped. A signal holds it shared while it checks reaped
	// and signals; the waiter holds it exclusively while it reaps. Until
	// reaped the child's pid (a zombie's too) and its process group id
	// cannot be given to another process, so a signal never reaches a
	// recycled pid or group.
	mu     sync.RWMutex
	reaped bool
}

// startMu serialises starts that hand the terminal over: the SIGTTIN and
// SIGTTOU dispositions are process-wide. ttySignals is the channel they
// are caught on while a child starts (nothing reads it).
var (
	startMu    sync.Mutex
	ttySignals = make(chan os.Signal, 1)
)

// Start starts argv as the child, in a process group of its own; when
// healthbridge's stdin is its controlling terminal and healthbridge's
// group is in the foreground, the child's group becomes the terminal's
// foreground group. With group, forwarded signals go to the child's whole
// process group (dumb-init's default, tini -g); without, to the child
// alone (tini's default). argv[0] is looked up on $PATH.
//
// env, when not empty, is added to the child's environment (KEY=VALUE).
func Start(argv []string, group bool, env ...string) (*Child, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	cmd.SysProcAttr = attr
	startMu.Lock()
	fg := ForegroundTerminal()
	if fg {
		// The child must not inherit SIG_IGN: a handled signal is reset to
		// its default in the child (as tini restores the child's signals),
		// an ignored one is not. Ignored again once it started, so that
		// healthbridge itself, now in a background group, is never stopped
		// for writing to the terminal or taking it back.
		signal.Notify(ttySignals, syscall.SIGTTIN, syscall.SIGTTOU)
		attr.Foreground, attr.Ctty = true, 0
	}
	err := proc.Start(cmd)
	if fg {
		signal.Ignore(syscall.SIGTTIN, syscall.SIGTTOU)
	}
	startMu.Unlock()
	if err != nil {
		return nil, err
	}
	c := &Child{cmd: cmd, group: group, started: time.Now(), done: make(chan struct{})}
	go c.wait(fg)
	return c, nil
}

// wait waits for the child to exit, then reaps it under mu (see Child.mu)
// and, when it had the terminal, takes the terminal back for
// healthbridge's own group (a Ctrl-C while no child runs then reaches
// healthbridge).
func (c *Child) wait(fg bool) {
	pid := c.cmd.Process.Pid
	for {
		var info unix.Siginfo
		// WNOWAIT: the child stays a zombie, holding its pid and group.
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	c.mu.Lock()
	_ = proc.Wait(c.cmd)
	c.reaped = true
	c.mu.Unlock()
	if fg {
		if pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil && pgrp == pid {
			_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
		}
	}
	c.code = ExitCode(c.cmd.ProcessState)
	close(c.done)
}

// ForegroundTerminal reports whether stdin is healthbridge's controlling
// terminal and healthbridge's process group is its foreground group: only
// then is the terminal handed to the child (a healthbridge started in the
// background of a shell leaves the terminal to the shell).
func ForegroundTerminal() bool {
	pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// ExitCode is a finished process's exit code, or 128+N when signal N
// killed it.
func ExitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// Started is when the child was started.
func (c *Child) Started() time.Time { return c.started }

// Pid is the child's pid.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Signal sends sig to the child, or to its process group when it was
// started with group. A child that has been reaped is not signalled (its
// pid may belong to another process by then) and that is not an error.
func (c *Child) Signal(sig syscall.Signal) error {
	return c.signal(sig, c.group)
}

// Kill sends SIGKILL to the child's whole process group (it leads one),
// unless it has been reaped.
func (c *Child) Kill() error {
	return c.signal(syscall.SIGKILL, true)
}

func (c *Child) signal(sig syscall.Signal, group bool) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.reaped {
		return nil
	}
	pid := c.cmd.Process.Pid
	if group {
		// The group outlives no member; the unreaped child is one.
		if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal %v to group %d: %w", sig, pid, err)
		}
		return nil
	}
	// Through os.Process: a pidfd where the kernel has them.
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to %d: %w", sig, pid, err)
	}
	return nil
}

// Done is closed when the child has exited (and was reaped).
func (c *Child) Done() <-chan struct{} { return c.done }

// Code is the child's exit code (see ExitCode); call it after Done.
func (c *Child) Code() int { <-c.done; return c.code }

// The kubelet's CrashLoopBackOff: the first restart is at once, the next
// waits 10 s, doubling up to 5 minutes; a child that ran 10 minutes starts
// the sequence over.
const (
	BackoffInitial = 10 * time.Second
	BackoffMax     = 5 * time.Minute
	BackoffReset   = 10 * time.Minute
)

// Backoff is the restart delay of one child, as the kubelet's
// CrashLoopBackOff (its doBackOff: a container that never crashed before
// restarts at once, then waits grow). The zero value is ready. It is pure:
// the caller passes how long the child ran.
type Backoff struct {
	crashed bool          // a restart happened since the last reset
	next    time.Duration // the wait before the next restart once crashed
}

// Next returns how long to wait before restarting a child that ran for
// ran, and advances the backoff.
func (b *Backoff) Next(ran time.Duration) time.Duration {
	if ran >= BackoffReset {
		b.crashed = false
	}
	if !b.crashed {
		b.crashed, b.next = true, BackoffInitial
		return 0
	}
	d := b.next
	b.next = min(2*b.next, BackoffMax)
	return d
}

// Current is the wait the next restart would get, for display (a child
// that runs long enough resets it).
func (b *Backoff) Current() time.Duration {
	if !b.crashed {
		return 0
	}
	return b.next
}

// Package supervise runs healthbridge's child in `healthbridge run -- CMD`:
// healthbridge as a container's init, as tini and dumb-init are. The child
// gets healthbridge's stdin, stdout, stderr, environment and working
// directory; the signals a container receives are forwarded to it (or to
// its whole process group); its exit code becomes healthbridge's, or 128+N
// when it died of signal N (the shell's convention, which Docker and
// Kubernetes report).
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
	"syscall"
	"time"

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
}

// Start starts argv as the child. With group, the child leads its own
// process group (as dumb-init's default) and signals go to the whole
// group; without, it stays in healthbridge's group and signals go to it
// alone (as tini's default). argv[0] is looked up on $PATH.
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
	if group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := proc.Start(cmd); err != nil {
		return nil, err
	}
	c := &Child{cmd: cmd, group: group, started: time.Now(), done: make(chan struct{})}
	go func() {
		_ = proc.Wait(cmd)
		c.code = ExitCode(cmd.ProcessState)
		close(c.done)
	}()
	return c, nil
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
// started with group. A child that is already gone is not an error.
func (c *Child) Signal(sig syscall.Signal) error {
	pid := c.cmd.Process.Pid
	if c.group {
		pid = -pid
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to %d: %w", sig, pid, err)
	}
	return nil
}

// Done is closed when the child has exited (and was reaped).
func (c *Child) Done() <-chan struct{} { return c.done }

// Code is the child's exit code (see ExitCode); call it after Done.
func (c *Child) Code() int { <-c.done; return c.code }

// Stop stops the child as the kubelet and Docker do: SIGTERM, then, if it
// has not exited within grace, SIGKILL to its whole process group (and to
// it). It returns the exit code.
func (c *Child) Stop(grace time.Duration) int {
	_ = c.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		pid := c.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGKILL) // its group, when it leads one
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return c.Code()
}

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

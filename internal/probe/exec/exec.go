// Package exec is the exec probe: run an argv, exit 0 is success.
//
// Semantics are the kubelet's (pkg/probe/exec) and Docker's health monitor
// (moby daemon/health.go): no shell unless the argv asks for one; stdout and
// stderr captured together, the first 4096 bytes stored; a run that exceeds
// its timeout is killed and fails with "Health check exceeded timeout (1s)".
// Beyond both, each run gets its own process group, and the whole group is
// killed when the run ends, so nothing a probe spawned outlives it.
package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/proc"
)

// Timing constants.
const (
	// waitDelay bounds exec.Cmd.Wait after the context is done and the group
	// was sent SIGKILL (a process in uninterruptible sleep may linger).
	waitDelay = 2 * time.Second
	// drainGrace is how long the output reader may keep reading after the
	// process group is gone. Only a process that escaped the group (setsid)
	// can still hold the pipe; after this the pipe is closed under it.
	drainGrace = 100 * time.Millisecond
)

// Kind is the exec kind: `exec: {command: [argv...]}`, as the kubelet's.
var Kind = probe.Kind{
	Name:      "exec",
	Has:       func(c *config.Check) bool { return c.Exec != nil },
	Validate:  validate,
	New:       New,
	ExitCodes: true,
	OneShot: &probe.OneShot{
		Words: []string{"exec"},
		Usage: "exec [--timeout 5s] [-v] -- COMMAND [ARG]...",
		Flags: func(*pflag.FlagSet) func(probe.Args) (probe.Prober, string, error) {
			return func(a probe.Args) (probe.Prober, string, error) {
				if len(a.Pos) != 1 || len(a.Command) == 0 {
					return nil, "", errors.New("exec: want -- COMMAND [ARG]...")
				}
				p, err := NewArgv(a.Command, a.Timeout, 0)
				if err != nil {
					return nil, "", err
				}
				return p, strings.Join(a.Command, " "), nil
			}
		},
	},
}

func validate(c *config.Check, path string) []error {
	e := c.Exec
	switch {
	case len(e.Command) == 0:
		return []error{config.Errorf(path+".exec.command", "required: the argv to run (write [sh, -c, \"...\"] for a shell)")}
	case e.Command[0] == "":
		return []error{config.Errorf(path+".exec.command[0]", "must not be empty")}
	case strings.ContainsAny(e.Command[0], " \t") && !strings.Contains(e.Command[0], "/"):
		// The Kubernetes docs' pitfall: [ "ps -ef | grep python" ] is one
		// argv word.
		return []error{config.Errorf(path+".exec.command[0]", "%q contains spaces: exec runs an argv without a shell; write [sh, -c, %q]", e.Command[0], e.Command[0])}
	}
	return nil
}

// Prober runs one command per Probe call.
type Prober struct {
	argv         []string
	path         string // resolved argv[0]
	timeout      time.Duration
	startingCode int
	drain        time.Duration // drainGrace; tests lengthen it
}

// New builds an exec prober from c.Exec. It resolves argv[0] on $PATH now,
// so a missing binary is a start-up error, not a silent stream of failures.
// Errors name the field ("exec.command[0]: ...").
func New(c *config.Check, _ probe.Deps) (probe.Prober, error) {
	if c.Exec == nil || len(c.Exec.Command) == 0 {
		return nil, config.Errorf("exec.command", "required")
	}
	p, err := NewArgv(c.Exec.Command, c.Timeout(), int(c.StartingExitCode))
	if err != nil {
		where := "in $PATH=" + os.Getenv("PATH")
		if strings.Contains(c.Exec.Command[0], "/") {
			where = "at that path"
		}
		return nil, config.Errorf("exec.command[0]", "%v (looked %s, where healthbridge runs: an exec check runs in "+
			"healthbridge's own container, not in the app's; as a sidecar, use tcpSocket, httpGet, udp, dns, grpc or rundir, "+
			"or the app's own exec probe)", err, where)
	}
	return p, nil
}

// NewArgv builds a prober for argv (exechealthz mode and the one-shot
// client), resolving argv[0] on $PATH now. timeout is only for the
// timeout message; the context carries the deadline. startingCode 0 turns
// the starting exit code off.
func NewArgv(argv []string, timeout time.Duration, startingCode int) (*Prober, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command")
	}
	path, err := osexec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("%q not found: %v", argv[0], unwrapExecErr(err))
	}
	return &Prober{argv: argv, path: path, timeout: timeout, startingCode: startingCode, drain: drainGrace}, nil
}

func unwrapExecErr(err error) error {
	var ee *osexec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// Probe runs the command once. A command that exits 0 is a success, one
// whose exit code is the configured starting code is OutcomeStarting, any
// other exit a failure; a command that cannot be started is Unknown. The
// Result's ExitCode is the command's, or -1 when it was killed.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	r, w, err := os.Pipe()
	if err != nil {
		res := probe.Unknown(fmt.Errorf("exec: pipe: %w", err))
		res.ExitCode = -1
		return res
	}
	cmd := osexec.CommandContext(ctx, p.path, p.argv[1:]...)
	cmd.Args[0] = p.argv[0]
	// The write end goes to the child as an *os.File, so exec starts no copy
	// goroutine and Wait returns as soon as the command exits, even if a
	// background child still holds the pipe (sh -c 'sleep 300 & echo ok').
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay

	out := newCapture(probe.MaxOutput)
	copied := make(chan struct{})
	go func() {
		drain(out, r)
		close(copied)
	}()

	err = proc.Start(cmd)
	_ = w.Close() // the child has its copy
	if err != nil {
		_ = r.Close()
		<-copied
		res := probe.Unknown(fmt.Errorf("exec %q: %w", p.argv[0], unwrapExecErr(err)))
		res.ExitCode = -1
		return res
	}
	pid := cmd.Process.Pid
	waitErr := proc.Wait(cmd)
	// The outcome is decided here, when the command has exited, as Docker
	// races the result against its timer (daemon/health.go): the group
	// kill and the output drain below take time that is not the command's.
	// A command that exited by itself is judged by its exit code, even
	// when the deadline passed while Wait returned; one that was killed
	// (by the deadline's group SIGKILL) after the deadline timed out.
	ctxErr := ctx.Err()
	if ctxErr != nil && cmd.ProcessState != nil && cmd.ProcessState.Exited() {
		ctxErr, waitErr = nil, exitErr(cmd.ProcessState)
	}
	// Nothing the probe spawned outlives the run.
	_ = killGroup(pid)
	t := time.NewTimer(p.drain)
	select {
	case <-copied:
		t.Stop()
	case <-t.C:
		_ = r.Close()
		<-copied
	}
	_ = r.Close()

	output := out.String()
	res := probe.Result{Output: output, ExitCode: cmd.ProcessState.ExitCode()}
	switch {
	case errors.Is(ctxErr, context.DeadlineExceeded):
		res.Outcome = probe.OutcomeFailure
		res.ExitCode = -1
		res.Output = fmt.Sprintf("Health check exceeded timeout (%v)", p.timeout)
		if output != "" {
			res.Output += ": " + output
		}
	case ctxErr != nil:
		res = probe.Unknown(fmt.Errorf("exec: run cancelled: %w", ctxErr))
		res.ExitCode = -1
	case waitErr == nil:
		res.Outcome = probe.OutcomeSuccess
	case res.ExitCode > 0 && res.ExitCode == p.startingCode:
		res.Outcome = probe.OutcomeStarting
	default:
		// The output is the command's own, even when empty: as Docker's
		// docker inspect and the kubelet; the exit code is in ExitCode.
		res.Outcome = probe.OutcomeFailure
	}
	return res
}

// exitErr is what Wait returns for a command that exited by itself with
// st: nil after exit 0.
func exitErr(st *os.ProcessState) error {
	if st.Success() {
		return nil
	}
	return &osexec.ExitError{ProcessState: st}
}

// killGroup sends SIGKILL to the process group led by pid. ESRCH (the group
// is already gone) is not an error.
func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

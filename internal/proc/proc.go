// Package proc starts probe commands and reaps orphans without stealing
// their exit status.
//
// When healthbridge is PID 1 (the usual case in a container) every orphaned
// process in the container is re-parented to it, and someone must wait for
// them or they stay <defunct> forever. A reaper that calls wait4(-1) would
// also collect healthbridge's own probe commands and steal their exit codes
// from exec.Cmd.Wait. So commands are started with Start, which records
// their pids under the same lock the reaper takes, and the reaper only waits
// for zombie children whose pids are not recorded.
//
// The children of a process are a process-wide fact, so the record is
// package-level state; it is safe for concurrent use.
package proc

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	// mu guards tracked. Start holds it across fork and registration, and
	// the reaper holds it while it checks a zombie against tracked and
	// reaps it, so a tracked child can never be reaped by the reaper before
	// it is registered. The scan of /proc for zombies happens before, without
	// the lock: a start never waits behind a scan of every process.
	mu sync.Mutex
	// tracked maps the pid of each started, not yet waited-for command to
	// its Cmd, so that Wait forgets its own entry only, never that of a
	// later command that was given the same pid.
	tracked = map[int]*exec.Cmd{}
)

// Start starts cmd (as cmd.Start) and records its pid so that Reap leaves
// it to Wait. Every child healthbridge starts after Reap runs must come
// through here.
func Start(cmd *exec.Cmd) error {
	mu.Lock()
	defer mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	tracked[cmd.Process.Pid] = cmd
	return nil
}

// Wait waits for cmd (as cmd.Wait) and then forgets its pid.
func Wait(cmd *exec.Cmd) error {
	err := cmd.Wait()
	mu.Lock()
	if tracked[cmd.Process.Pid] == cmd {
		delete(tracked, cmd.Process.Pid)
	}
	mu.Unlock()
	if blocked.Load() {
		select {
		case collected <- struct{}{}:
		default:
		}
	}
	return err
}

// Tracked reports how many started commands have not been waited for.
func Tracked() int {
	mu.Lock()
	defer mu.Unlock()
	return len(tracked)
}

// ShouldReap reports whether healthbridge should reap orphans: when it is
// PID 1 of its PID namespace, or when asked to (then it also makes itself a
// child subreaper, PR_SET_CHILD_SUBREAPER, so orphans of its commands come
// to it rather than to the real PID 1).
func ShouldReap(forced bool) (bool, error) {
	if os.Getpid() == 1 {
		return true, nil
	}
	if !forced {
		return false, nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return false, err
	}
	return true, nil
}

// reapInterval is how often Reap sweeps even without SIGCHLD (signals
// coalesce, and one may arrive while a sweep is running).
const reapInterval = time.Second

var (
	// blocked is set while a sweep has stopped at a started command's
	// zombie that its Wait had not collected yet (see sweep).
	blocked atomic.Bool
	// collected wakes Reap when Wait collects a command while blocked is
	// set: the children behind it can be looked at again.
	collected = make(chan struct{}, 1)
)

// Reap reaps orphaned zombie children until ctx is done. It sweeps on every
// SIGCHLD and every second. Call it once, in its own goroutine, only when
// ShouldReap says so.
//
// A sweep asks the kernel for a waitable child (waitid with WNOWAIT, which
// leaves it a zombie) and reaps it unless Start started it, as containerd's
// reaper and tini wait for whatever exited, so a sweep costs one system
// call per zombie however many processes the pid namespace holds. The
// kernel offers one waitable child at a time: a started command's zombie
// hides those behind it until its Wait collects it, which Wait then
// signals. If the same one is still there a tick later (its Wait is late),
// or sweeps have stopped at some command's zombie for scanAfter (commands
// exiting all the time), that tick's sweep also reads /proc, which sees
// past them: at most once a second, and once every scanAfter under churn.
func Reap(ctx context.Context, log *slog.Logger) {
	if self, ok := procSelf(); ok && self != os.Getpid() {
		// PID 1 of a namespace whose /proc is the parent's (unshare --pid
		// --fork without --mount-proc): /proc shows host pids.
		if _, ok := nsPid(self); ok {
			log.Info("/proc belongs to another pid namespace: reaping orphans through NSpid", "proc_pid", self, "pid", os.Getpid())
		} else {
			log.Warn("/proc belongs to another pid namespace and shows no NSpid: orphans cannot be reaped (mount a /proc of this namespace)", "proc_pid", self, "pid", os.Getpid())
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	t := time.NewTicker(reapInterval)
	defer t.Stop()
	lastHeld := 0         // the started command whose zombie held up the sweep at the last tick
	allSeen := time.Now() // when a sweep last saw every exited child
	tick := false
	for {
		n, held := sweep()
		now := time.Now()
		if held == 0 {
			allSeen = now
		} else if tick && (held == lastHeld || now.Sub(allSeen) >= scanAfter) {
			// The same command's zombie a whole tick later (its Wait is
			// late), or always some command's (many commands exiting):
			// read /proc, which sees past it.
			n += scanSweep()
			allSeen = now
		}
		if tick {
			lastHeld = held
		}
		if n > 0 {
			log.Debug("reaped orphans", "count", n)
		}
		tick = false
		select {
		case <-ctx.Done():
			return
		case <-sig:
		case <-collected:
		case <-t.C:
			tick = true
		}
	}
}

// scanAfter is how long sweeps may keep stopping at started commands'
// zombies (commands exiting all the time) before a tick's sweep reads
// /proc to see past them.
const scanAfter = 10 * reapInterval

// sweep reaps the zombie children the kernel offers one after the other
// (waitid(P_ALL, WNOWAIT) names one without reaping it), and returns how
// many it reaped, and the pid of the started command's zombie it stopped
// at, not yet collected by the command's Wait (0: none). Each zombie is
// checked against the tracked set under the lock, as in scanSweep.
func sweep() (n int, held int) {
	for {
		pid := waitable()
		if pid <= 0 {
			blocked.Store(false)
			return n, 0
		}
		mu.Lock()
		if _, mine := tracked[pid]; mine {
			blocked.Store(true)
			mu.Unlock()
			return n, pid
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		mu.Unlock()
		if err != nil || got != pid {
			// Not ours to reap after all: leave the rest to the next sweep.
			blocked.Store(false)
			return n, 0
		}
		n++
	}
}

// siginfoPid is the offset of si_pid in Linux's siginfo_t: after si_signo,
// si_errno and si_code (three ints) the union is pointer-aligned.
const siginfoPid = 12 + (unsafe.Sizeof(uintptr(0)) - 4)

// waitable returns the pid of a child of this process that has exited and
// not been reaped (any child: __WALL), leaving it a zombie, or 0 when there
// is none (or no child at all).
func waitable() int {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0
		}
		return int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), siginfoPid)))
	}
}

// scanSweep reaps every zombie child of this process that Start did not
// start, found by reading /proc, and returns how many it reaped.
//
// The scan of /proc runs without the lock. A zombie it finds is checked
// against the tracked set under the lock: a command being started holds
// the lock until its pid is recorded, so a zombie that is a started
// command is always seen as tracked, and is left to Wait.
func scanSweep() int {
	zombies := zombieChildren()
	if len(zombies) == 0 {
		return 0
	}
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, pid := range zombies {
		if _, mine := tracked[pid]; mine {
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil); err == nil && got == pid {
			n++
		}
	}
	return n
}

// zombieChildren lists this process's zombie children, by the pids this
// process knows them by. It reads /proc; when /proc is another pid
// namespace's (healthbridge is PID 1 of a namespace without its own /proc
// mount), the pids /proc shows are mapped to this namespace's through the
// last field of each process's NSpid line.
func zombieChildren() []int {
	self := os.Getpid()
	procPid, ok := procSelf()
	if !ok {
		procPid = self
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		st, parent, ok := ReadStat(f)
		if !ok || st != 'Z' || parent != procPid {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			continue
		}
		if procPid != self {
			if pid, ok = nsPid(pid); !ok {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}

// procSelf returns this process's pid as /proc shows it (the /proc/self
// link): os.Getpid() unless /proc is another pid namespace's.
func procSelf() (int, bool) {
	l, err := os.Readlink("/proc/self")
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(l)
	return n, err == nil
}

// nsPid returns the pid that /proc's process pid has in its innermost pid
// namespace: the last field of the NSpid line of /proc/<pid>/status
// (Linux 4.1 and later).
func nsPid(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.Atoi(f[len(f)-1])
			return n, err == nil
		}
	}
	return 0, false
}

// Running reports whether pid is a live process: it has a /proc entry whose
// state is not Z (an exited process awaiting its reaper is not running).
func Running(pid int) bool {
	st, ok := ReadStatFields("/proc/" + strconv.Itoa(pid) + "/stat")
	return ok && st.State != 'Z'
}

// Stat is what healthbridge reads of a /proc/<pid>/stat line.
type Stat struct {
	// State is the process state letter: R, S, D, Z, T, …
	State byte
	// PPid is the parent's pid (field 4).
	PPid int
	// StartTicks is when the process started, in clock ticks (USER_HZ,
	// 1/100 s) after boot (field 22, starttime).
	StartTicks uint64
}

// ReadStat reads a /proc/<pid>/stat file and returns the process state
// letter (R, S, Z, …) and parent pid.
func ReadStat(path string) (state byte, ppid int, ok bool) {
	st, ok := ReadStatFields(path)
	return st.State, st.PPid, ok
}

// ReadStatFields reads a /proc/<pid>/stat file (ParseStat).
func ReadStatFields(path string) (Stat, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, false
	}
	return ParseStat(b)
}

// ParseStat parses a /proc/<pid>/stat line: "pid (comm) state ppid …",
// where comm (up to 15 bytes the process chose) may hold spaces,
// parentheses and newlines, so the fields are counted from the last ')'.
// It reports false for anything that is not such a line.
func ParseStat(b []byte) (Stat, bool) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, false
	}
	// fields[0] is field 3 (state), so field n is fields[n-3].
	fields := strings.Fields(s[i+1:])
	// The state is one printable ASCII character ("R", "S", "Z", …); a
	// byte such as 0x85 is no state at all.
	if len(fields) < 20 || len(fields[0]) != 1 || fields[0][0] <= ' ' || fields[0][0] >= 0x7f {
		return Stat{}, false
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return Stat{}, false
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return Stat{}, false
	}
	return Stat{State: fields[0][0], PPid: ppid, StartTicks: start}, true
}

// userHZ is the unit of /proc's clock ticks: fixed at 100 by the kernel's
// ABI on every architecture Go supports on Linux.
const userHZ = 100

// StartTime returns when process pid started, on the wall clock, reading
// procRoot/<pid>/stat and the boot time (btime) in procRoot/stat. btime
// has a resolution of one second and is rounded down, so the result is at
// most 1 s earlier than the true start, never later.
func StartTime(procRoot string, pid int) (time.Time, bool) {
	st, ok := ReadStatFields(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if !ok {
		return time.Time{}, false
	}
	b, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			ticks := time.Duration(st.StartTicks) * (time.Second / userHZ)
			return time.Unix(boot, 0).Add(ticks), true
		}
	}
	return time.Time{}, false
}

// Package kube is the kubernetesPod probe: the pod's own container
// readiness, as the kubelet reported it to the API server
// (http-healthcheck-sidecar, without its one GET per request).
//
// The watch runs in a helper process, healthbridge-kube (package
// kube/watch, cmd/healthbridge-kube), which healthbridge starts at the
// first probe run and supervises: client-go lives there, so a healthbridge
// whose config has no kubernetesPod check does not carry it in memory.
// The helper watches its one pod (an informer with a metadata.name field
// selector) and writes the pod's state on every change, so probe runs,
// and therefore any number of HTTP requests to healthbridge, cost no API
// requests: each run judges the last state the helper sent. When the API
// server cannot be reached, or the helper is not running, the last known
// status is used until maxStalenessSeconds, then the check fails and says
// why; the informer re-lists and re-watches by itself when the server
// returns, and a helper that exits is started again.
//
// RBAC: get, list and watch on pods in the namespace (or restricted by
// resourceNames to the one pod).
package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/proc"
)

// ServiceAccountNamespaceFile is where a pod finds its namespace.
const ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// HelperName is the helper executable's name. It is looked for next to
// the running healthbridge executable first, then on $PATH; the full
// image has both.
const HelperName = "healthbridge-kube"

// Kind is the kubernetesPod kind: this pod's container readiness, as the
// kubelet reported it.
var Kind = probe.Kind{
	Name: "kubernetesPod",
	Has:  func(c *config.Check) bool { return c.KubernetesPod != nil },
	Defaults: func(c *config.Check) {
		if c.KubernetesPod.MaxStalenessSeconds == 0 {
			c.KubernetesPod.MaxStalenessSeconds = config.DefaultMaxStalenessSeconds
		}
	},
	Validate: func(c *config.Check, path string) []error {
		if k := c.KubernetesPod; k.MaxStalenessSeconds < 0 {
			return []error{config.Errorf(path+".kubernetesPod.maxStalenessSeconds", "must be >= 0, got %d", k.MaxStalenessSeconds)}
		}
		return nil
	},
	New: New,
}

// Prober judges one pod's readiness from the states its helper sends.
type Prober struct {
	ns, pod, container, self string
	maxStale                 time.Duration
	helper                   string   // the helper's path
	watchArgs                []string // its arguments for `watch`

	// now is the clock staleness is judged by; time.Now unless a test
	// sets it.
	now func() time.Time

	startOnce sync.Once
	stopOnce  sync.Once
	ctx       context.Context // cancelled by Close: stops the helper
	cancel    context.CancelFunc
	done      chan struct{} // closed when the supervising goroutine has returned
	synced    chan struct{} // closed at the first synced state
	syncOnce  sync.Once

	// mu guards the fields below.
	mu        sync.Mutex
	cached    *Pod      // the last synced state's pod; nil: it does not exist
	lostSince time.Time // when requests (or the helper) began to fail; zero while they succeed
	lastErr   error
}

// New builds a kubernetesPod prober from c.KubernetesPod, resolving the
// helper, the pod, the namespace and the credentials now (a missing
// helper, namespace or kubeconfig is a start-up error: `healthbridge-kube
// resolve` is run once, within 10 s). The watch starts at the first probe
// run.
func New(c *config.Check, d probe.Deps) (probe.Prober, error) {
	k := c.KubernetesPod
	if k == nil {
		return nil, config.Errorf("kubernetesPod", "required")
	}
	helper, err := inProcessHelper, error(nil)
	if InProcess == nil {
		helper, err = FindHelper()
	}
	if err != nil {
		return nil, config.Errorf("kubernetesPod", "%v", err)
	}
	kubeNS, err := resolve(helper, d.Kubeconfig)
	if err != nil {
		return nil, config.Errorf("kubernetesPod", "no Kubernetes credentials: %v", err)
	}
	pod := k.Pod
	if pod == "" {
		pod = os.Getenv("HOSTNAME")
	}
	if pod == "" {
		return nil, config.Errorf("kubernetesPod.pod", "not set and $HOSTNAME is empty")
	}
	ns := k.Namespace
	if ns == "" {
		ns = defaultNamespace(kubeNS)
	}
	if ns == "" {
		return nil, config.Errorf("kubernetesPod.namespace", "not set, and no %s, $POD_NAMESPACE or kubeconfig namespace", ServiceAccountNamespaceFile)
	}
	self := k.SelfContainer
	if self == "" {
		self = os.Getenv("HEALTHBRIDGE_CONTAINER_NAME")
	}
	args := []string{"watch", "--namespace", ns, "--pod", pod}
	if d.Kubeconfig != "" {
		args = append(args, "--kubeconfig", d.Kubeconfig)
	}
	if d.UserAgent != "" {
		args = append(args, "--user-agent", d.UserAgent)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Prober{ns: ns, pod: pod, container: k.Container, self: self,
		maxStale: time.Duration(k.MaxStalenessSeconds) * time.Second, helper: helper, watchArgs: args, now: time.Now,
		ctx: ctx, cancel: cancel, done: make(chan struct{}), synced: make(chan struct{})}, nil
}

// FindHelper returns the path of healthbridge-kube: next to the running
// executable, else on $PATH. The error says where it looked.
func FindHelper() (string, error) {
	var next string
	if exe, err := os.Executable(); err == nil {
		next = filepath.Join(filepath.Dir(exe), HelperName)
		if st, err := os.Stat(next); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return next, nil
		}
	}
	if p, err := exec.LookPath(HelperName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("the kubernetesPod kind runs its watch in %s, which is neither at %s nor on $PATH (the full image has it; build it with go build ./cmd/healthbridge-kube)", HelperName, next)
}

// resolve runs `healthbridge-kube resolve`, which finds credentials with
// client-go's rules, and returns the kubeconfig context's namespace.
func resolve(helper, kubeconfig string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := []string{"resolve"}
	if kubeconfig != "" {
		args = append(args, "--kubeconfig", kubeconfig)
	}
	var stdout, stderr bytes.Buffer
	if err := runResolve(ctx, helper, args, &stdout, &stderr); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", errors.New(msg)
		}
		return "", err
	}
	var r Resolved
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return "", fmt.Errorf("%s resolve: bad answer %q: %v", helper, stdout.String(), err)
	}
	return r.Namespace, nil
}

// runResolve runs the helper's resolve command, in process (InProcess) or
// as the helper process, writing its output to stdout and stderr.
func runResolve(ctx context.Context, helper string, args []string, stdout, stderr *bytes.Buffer) error {
	if InProcess != nil {
		if code := InProcess(ctx, args, ctxReader{ctx}, stdout, stderr); code != 0 {
			return fmt.Errorf("%s resolve: exit status %d", helper, code)
		}
		return nil
	}
	cmd := exec.CommandContext(ctx, helper, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	if err := proc.Start(cmd); err != nil {
		return fmt.Errorf("%s: %v", helper, err)
	}
	if err := proc.Wait(cmd); err != nil {
		return fmt.Errorf("%s resolve: %v", helper, err)
	}
	return nil
}

func defaultNamespace(kubeNS string) string {
	if b, err := os.ReadFile(ServiceAccountNamespaceFile); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return kubeNS
}

// Helper restart backoff: a helper that exits is started again after
// helperBackoffMin, doubling up to helperBackoffMax while it keeps
// exiting; one that ran for helperBackoffMax resets the backoff.
const (
	helperBackoffMin = time.Second
	helperBackoffMax = 30 * time.Second
)

// maxMessage bounds one line from the helper (a pod's reduced state is a
// few KB even with many containers).
const maxMessage = 1 << 20

func (p *Prober) start() {
	go func() {
		defer close(p.done)
		backoff := helperBackoffMin
		for {
			began := time.Now()
			err := p.runHelper()
			if p.ctx.Err() != nil {
				return
			}
			if InProcess != nil {
				p.noteContact(fmt.Errorf("the pod watch ended: %v", err))
			} else {
				p.noteContact(fmt.Errorf("%s exited: %v", HelperName, err))
			}
			if time.Since(began) >= helperBackoffMax {
				backoff = helperBackoffMin
			}
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, helperBackoffMax)
		}
	}()
}

// runHelper runs one helper process until it exits or Close stops it,
// applying every state it sends. Its standard input is a pipe healthbridge
// never writes: the helper exits when it closes (healthbridge stopped or
// died), and the kernel kills it if healthbridge dies first (Pdeathsig).
func (p *Prober) runHelper() error {
	if InProcess != nil {
		return p.runInProcess()
	}
	cmd := exec.Command(p.helper, p.watchArgs...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	cmd.WaitDelay = 2 * time.Second
	if err := proc.Start(cmd); err != nil {
		return err
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-p.ctx.Done():
			_ = stdin.Close()
			select {
			case <-stopped:
			case <-time.After(2 * time.Second):
				_ = cmd.Process.Kill()
			}
		case <-stopped:
		}
	}()
	bad := p.readStates(stdout)
	// Its output has ended: a helper that has exited is reaped, and one
	// that closed its standard output but still runs can send nothing more
	// and is killed, so that its silence is never read as "no change".
	_ = cmd.Process.Kill()
	werr := proc.Wait(cmd)
	close(stopped)
	_ = stdin.Close()
	if bad != nil {
		return bad
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return fmt.Errorf("%v: %s", werr, msg)
	}
	return werr
}

// readStates applies every state line the helper writes to r until r
// ends, and returns why it ended early: a line that is not a state, or a
// read error.
func (p *Prober) readStates(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxMessage)
	for sc.Scan() {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("unreadable state %.200q: %v", sc.Bytes(), err)
		}
		p.apply(m)
	}
	return sc.Err()
}

// InProcess, when set, runs the helper's commands inside healthbridge
// instead of as the healthbridge-kube process: the same function
// (internal/probe/kube/helper.Run) with the same arguments, over pipes;
// the exit code is the helper's. The full build sets it (package kinds);
// a build with -tags kubehelper leaves it nil, and the watch runs in the
// healthbridge-kube process found by FindHelper.
var InProcess func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// inProcessHelper names the helper in messages when InProcess runs it.
const inProcessHelper = HelperName + " (in process)"

// runInProcess is runHelper through InProcess: the helper's standard input
// ends when the prober closes, as the pipe of a process does.
func (p *Prober) runInProcess() error {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	r, w := io.Pipe()
	stderr := &tailBuffer{max: 4096}
	code := -1
	ended := make(chan struct{})
	go func() {
		code = InProcess(ctx, p.watchArgs, ctxReader{ctx}, w, stderr)
		_ = w.Close()
		close(ended)
	}()
	go func() {
		select {
		case <-ended:
		case <-ctx.Done():
			// Its standard input has ended. A watch that has not returned
			// within inProcessStop is read no more, as a process is killed.
			select {
			case <-ended:
			case <-time.After(inProcessStop):
				_ = r.CloseWithError(errors.New("stopped"))
			}
		}
	}()
	bad := p.readStates(r)
	cancel()
	_ = r.Close() // a watch still writing gets an error, and stops
	select {
	case <-ended:
	case <-time.After(inProcessStop):
		// A watch that ignores its context cannot be killed as a process
		// can: it is left behind, and a new one is started.
		return fmt.Errorf("did not stop within %v of its end", inProcessStop)
	}
	if bad != nil {
		return bad
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return fmt.Errorf("exit status %d: %s", code, msg)
	}
	if code != 0 {
		return fmt.Errorf("exit status %d", code)
	}
	return nil
}

// inProcessStop bounds the wait for an in-process watch to return once its
// context is done, as cmd.WaitDelay does for the process.
const inProcessStop = 2 * time.Second

// ctxReader reads nothing and ends (io.EOF) when its context is done.
type ctxReader struct{ ctx context.Context }

func (r ctxReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, io.EOF
}

// apply records one state from the helper.
func (p *Prober) apply(m Message) {
	if m.Err == "" {
		p.noteContact(nil)
	} else {
		p.noteContact(errors.New(m.Err))
	}
	if !m.Synced {
		return
	}
	p.mu.Lock()
	p.cached = m.Pod
	p.mu.Unlock()
	p.syncOnce.Do(func() { close(p.synced) })
}

// noteContact records the outcome of a request to the API server (or of
// the helper itself).
func (p *Prober) noteContact(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.lostSince, p.lastErr = time.Time{}, nil
		return
	}
	if p.lostSince.IsZero() {
		p.lostSince = p.now()
	}
	p.lastErr = err
}

// Probe judges the last state the helper sent. The first run waits
// (within ctx) for the watch's first sync.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	p.startOnce.Do(p.start)
	synced := true
	select {
	case <-p.synced:
	case <-ctx.Done():
		select {
		case <-p.synced:
		default:
			synced = false
		}
	}
	p.mu.Lock()
	pod, lostSince, lastErr := p.cached, p.lostSince, p.lastErr
	p.mu.Unlock()
	where := p.ns + "/" + p.pod
	if !synced {
		if lastErr != nil {
			return probe.Unknown(fmt.Errorf("cannot read pod %s: %v", where, lastErr))
		}
		return probe.Unknown(fmt.Errorf("pod %s: no answer from the API server yet", where))
	}
	stale, err := staleness(lostSince, lastErr, p.now(), p.maxStale, where)
	if err != nil {
		return probe.Unknown(err)
	}
	ok, reason := Ready(pod, p.container, p.self)
	if pod == nil {
		reason = fmt.Sprintf("pod %s not found", where)
	}
	if ok {
		return probe.Success(reason + stale)
	}
	return probe.Failure("%s%s", reason, stale)
}

// staleness judges the last known status when the API server has not
// answered since lostSince (zero: it answers): within maxStale it returns a
// suffix saying the status is the last known one; after maxStale, an error
// (the check cannot be evaluated: Unknown, which counts as a failure). It
// is pure; now is the caller's clock.
func staleness(lostSince time.Time, lastErr error, now time.Time, maxStale time.Duration, where string) (string, error) {
	if lostSince.IsZero() {
		return "", nil
	}
	age := now.Sub(lostSince)
	if age > maxStale {
		return "", fmt.Errorf("API server unreachable for %v (more than maxStalenessSeconds %v): last known status of pod %s is too old: %v",
			age.Round(time.Second), maxStale, where, lastErr)
	}
	return fmt.Sprintf(" (last known status: API server unreachable for %v: %v)", age.Round(time.Second), lastErr), nil
}

// Close stops the helper (closing its standard input, then killing it
// after 2 s) and waits for it. It is safe to call more than once,
// concurrently, and before any Probe.
func (p *Prober) Close() error {
	p.startOnce.Do(func() { close(p.done) }) // never started: nothing to stop
	p.stopOnce.Do(p.cancel)
	<-p.done
	return nil
}

// tailBuffer keeps the last max bytes written to it: a helper's standard
// error, for the message when it exits.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, b...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/proc"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

var (
	kubeOnce sync.Once
	kubeEnv  *kubetest.Env
	kubeErr  error
	kubeDir  string
)

// kube returns the package's real etcd + kube-apiserver, started once
// (building them first when the cache is cold).
func kube(t *testing.T) (*kubetest.Env, *kubernetes.Clientset) {
	t.Helper()
	kubeOnce.Do(func() {
		kubeDir, kubeErr = os.MkdirTemp("", "hb-kube")
		if kubeErr != nil {
			return
		}
		start := time.Now()
		kubeEnv, kubeErr = kubetest.Start(kubeDir, func(s string) { fmt.Fprintln(os.Stderr, "kubetest:", s) })
		if kubeErr == nil {
			fmt.Fprintf(os.Stderr, "kubetest: etcd and kube-apiserver %s ready in %v\n", kubetest.Version, time.Since(start).Round(100*time.Millisecond))
		}
	})
	if kubeErr != nil {
		t.Fatalf("kube test environment: %v", kubeErr)
	}
	c, err := kubeEnv.Client(kubetest.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return kubeEnv, c
}

func stopKube() {
	if kubeEnv != nil {
		kubeEnv.Stop()
	}
	if kubeDir != "" {
		os.RemoveAll(kubeDir)
	}
}

// hbKube starts healthbridge with checks (YAML list items) as user.
func hbKube(t *testing.T, env *kubetest.Env, user, ns string, extraEnv []string, checks string) *testutil.Process {
	t.Helper()
	kc, err := env.Kubeconfig(user, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testutil.WriteFile(t, "hb.yaml", "listen: 127.0.0.1:0\nexposeOutput: true\nchecks:\n"+checks)
	p := testutil.StartEnv(t, bin(t), append([]string{"POD_NAMESPACE=" + ns}, extraEnv...), "--config", cfg, "--kubeconfig", kc)
	return p
}

func podCheck(name, extra string) string {
	return fmt.Sprintf("  - name: %s\n    roles: [readiness]\n    periodSeconds: 1\n    failureThreshold: 1\n    kubernetesPod: {%s}\n", name, extra)
}

func readyzHas(code int, parts ...string) func(int, string) bool {
	return func(c int, body string) bool {
		if c != code {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(body, p) {
				return false
			}
		}
		return true
	}
}

// TestKubePodReadiness: a named container, all containers but healthbridge's
// own, a missing container, a missing pod, empty status, the flip from not
// ready to ready reaching /readyz within one period, and the pod's deletion.
func TestKubePodReadiness(t *testing.T) {
	testutil.NeedFull(t, "the kubernetesPod kind")
	env, c := kube(t)
	ns := kubetest.Namespace(t, c)
	kubetest.GrantPodRead(t, c, ns, kubetest.Reader)
	kubetest.Pod(t, c, ns, "web", "app", "db", "healthbridge")
	hb := hbKube(t, env, kubetest.Reader, ns, []string{"HOSTNAME=web", "HEALTHBRIDGE_CONTAINER_NAME=healthbridge"},
		podCheck("app", "container: app")+
			podCheck("all", "")+
			podCheck("nope", "container: nope")+
			podCheck("ghost", "pod: ghost"))

	// No status yet: nothing is ready.
	hb.WaitFor(t, "/readyz/all?verbose", readyzHas(503, "pod has no container statuses yet"))
	hb.WaitFor(t, "/readyz/app?verbose", readyzHas(503, `container "app" has no status yet`))
	hb.WaitFor(t, "/readyz/ghost?verbose", readyzHas(503, "pod "+ns+"/ghost not found"))

	kubetest.SetReady(t, c, ns, "web", map[string]bool{"app": true, "db": false, "healthbridge": false})
	hb.WaitFor(t, "/readyz/app", readyzHas(200))
	hb.WaitFor(t, "/readyz/all?verbose", readyzHas(503, "not ready: db (running, readiness probe failing)"))
	hb.WaitFor(t, "/readyz/nope?verbose", readyzHas(503, `container "nope" does not exist in pod web`))

	// The flip: db becomes ready; healthbridge's own container does not count.
	flip := time.Now()
	kubetest.SetReady(t, c, ns, "web", map[string]bool{"app": true, "db": true, "healthbridge": false})
	hb.WaitFor(t, "/readyz/all", readyzHas(200))
	took := time.Since(flip)
	testutil.Report(t, "pod status flipped to ready -> /readyz 200 after %v (period 1s)", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Fatalf("the flip took %v, more than one period plus a second", took)
	}

	kubetest.SetReady(t, c, ns, "web", map[string]bool{"app": false, "db": true})
	hb.WaitFor(t, "/readyz/app?verbose", readyzHas(503, "is not ready"))

	if err := c.CoreV1().Pods(ns).Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	hb.WaitFor(t, "/readyz/all?verbose", readyzHas(503, "pod "+ns+"/web not found"))
	if code, _ := hb.Get(t, "/livez"); code != 200 {
		t.Fatalf("healthbridge itself must stay live: %d", code)
	}
}

// TestKubeRBACDenied: a token that may not read the pod is a clear failure,
// not a crash.
func TestKubeRBACDenied(t *testing.T) {
	testutil.NeedFull(t, "the kubernetesPod kind")
	env, c := kube(t)
	ns := kubetest.Namespace(t, c)
	kubetest.Pod(t, c, ns, "web", "app")
	kubetest.SetReady(t, c, ns, "web", map[string]bool{"app": true})
	hb := hbKube(t, env, kubetest.Denied, ns, []string{"HOSTNAME=web"}, podCheck("pod", "container: app"))
	_, body := hb.WaitFor(t, "/readyz?verbose", readyzHas(503, "forbidden"))
	if !strings.Contains(body, "cannot read pod "+ns+"/web") {
		t.Fatalf("unclear failure: %q", body)
	}
	if code, _ := hb.Get(t, "/livez"); code != 200 {
		t.Fatal("not alive")
	}
}

// TestKubeAPIServerDownAndBack: while the API server is stopped the last
// known status is served until maxStalenessSeconds, then the check fails
// saying why; when the server returns the watch resumes by itself.
func TestKubeAPIServerDownAndBack(t *testing.T) {
	testutil.NeedFull(t, "the kubernetesPod kind")
	env, c := kube(t)
	ns := kubetest.Namespace(t, c)
	kubetest.GrantPodRead(t, c, ns, kubetest.Reader)
	kubetest.Pod(t, c, ns, "web", "app")
	kubetest.SetReady(t, c, ns, "web", map[string]bool{"app": true})
	const staleness = 4 * time.Second
	hb := hbKube(t, env, kubetest.Reader, ns, []string{"HOSTNAME=web"}, podCheck("pod", fmt.Sprintf("maxStalenessSeconds: %d", int(staleness.Seconds()))))
	hb.WaitFor(t, "/readyz", readyzHas(200))

	// Taken before the stop begins: the API server's graceful exit closes
	// the watch at once, and healthbridge rightly counts from its last
	// contact, which is after this instant.
	stopping := time.Now()
	env.StopAPIServer()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := env.StartAPIServer(); err != nil {
				t.Errorf("restart after failure: %v", err)
			}
		}
	})
	// Still the last known status, and saying so.
	hb.WaitFor(t, "/readyz/pod?format=json", readyzHas(200, "API server unreachable"))
	_, body := hb.WaitFor(t, "/readyz?verbose", readyzHas(503, "more than maxStalenessSeconds"))
	failedAfter := time.Since(stopping)
	testutil.Report(t, "API server stopped -> last known status served, then /readyz 503 after %v (maxStalenessSeconds %v + period 1s): %s",
		failedAfter.Round(time.Millisecond), staleness, strings.TrimSpace(strings.Split(body, "\n")[0]))
	if failedAfter < staleness {
		t.Fatalf("failed after %v, before maxStalenessSeconds", failedAfter)
	}

	if err := env.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	back := time.Now()
	hb.WaitFor(t, "/readyz", readyzHas(200))
	testutil.Report(t, "API server restarted -> /readyz 200 again after %v, same healthbridge process", time.Since(back).Round(time.Millisecond))
	// And it follows changes again.
	kubetest.SetReady(t, c, ns, "web", map[string]bool{"app": false})
	hb.WaitFor(t, "/readyz", readyzHas(503))
}

// TestKubeNoAPIRequestsPerHTTPRequest: 1,000 requests to /readyz cause no
// API requests, counted from the API server's audit log.
func TestKubeNoAPIRequestsPerHTTPRequest(t *testing.T) {
	testutil.NeedFull(t, "the kubernetesPod kind")
	env, c := kube(t)
	ns := kubetest.Namespace(t, c)
	kubetest.GrantPodRead(t, c, ns, kubetest.Reader)
	kubetest.Pod(t, c, ns, "web", "app")
	kubetest.SetReady(t, c, ns, "web", map[string]bool{"app": true})
	hb := hbKube(t, env, kubetest.Reader, ns, []string{"HOSTNAME=web"}, podCheck("pod", "container: app"))
	hb.WaitFor(t, "/readyz", readyzHas(200))
	before, err := env.AuditCount(kubetest.Reader, "pods")
	if err != nil {
		t.Fatal(err)
	}
	if before["list"]+before["watch"] == 0 {
		t.Fatalf("the audit log shows no list/watch by %s: the count would prove nothing (%v)", kubetest.Reader, before)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < 1000; i++ {
		resp, err := client.Get(hb.Addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	after, err := env.AuditCount(kubetest.Reader, "pods")
	if err != nil {
		t.Fatal(err)
	}
	extra := 0
	for verb, n := range after {
		extra += n - before[verb]
	}
	testutil.Report(t, "1000 GET /readyz -> %d additional API requests (audit log of %s: before %v, after %v)", extra, kubetest.Reader, before, after)
	if extra != 0 {
		t.Fatalf("%d API requests during 1000 /readyz requests", extra)
	}
}

// TestSeed001EnvironmentVariables: http-healthcheck-sidecar's variables, its
// /health answers, other paths 404 (never a redirect).
func TestSeed001EnvironmentVariables(t *testing.T) {
	testutil.NeedFull(t, "the kubernetesPod kind")
	env, c := kube(t)
	ns := kubetest.Namespace(t, c)
	kubetest.GrantPodRead(t, c, ns, kubetest.Reader)
	kubetest.Pod(t, c, ns, "web", "app", "sidecar")
	kubetest.SetReady(t, c, ns, "web", map[string]bool{"app": true, "sidecar": false})
	kc, err := env.Kubeconfig(kubetest.Reader, "")
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"KUBECONFIG=" + kc, "POD_NAMESPACE=" + ns, "HOSTNAME=not-this-pod"}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(p *testutil.Process, path string) (int, string) {
		resp, err := noRedirect.Get(p.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	tests := []struct {
		name string
		vars []string
		code int
		body string
	}{
		{"target container ready", []string{"HTTP_HEALTHCHECK_SIDECAR_TARGET_CONTAINER=app", "HTTP_HEALTHCHECK_SIDECAR_TARGET_POD_OVERRIDE=web"}, 200, "OK"},
		{"target container not ready", []string{"HTTP_HEALTHCHECK_SIDECAR_TARGET_CONTAINER=sidecar", "HTTP_HEALTHCHECK_SIDECAR_TARGET_POD_OVERRIDE=web"}, 500, "UNAVAILABLE"},
		{"all containers", []string{"HTTP_HEALTHCHECK_SIDECAR_TARGET_POD_OVERRIDE=web"}, 500, "UNAVAILABLE"},
		{"pod from HOSTNAME", []string{"HTTP_HEALTHCHECK_SIDECAR_TARGET_CONTAINER=app"}, 500, "UNAVAILABLE"}, // HOSTNAME names no pod
		{"target container in another case", []string{"HTTP_HEALTHCHECK_SIDECAR_TARGET_CONTAINER=App", "HTTP_HEALTHCHECK_SIDECAR_TARGET_POD_OVERRIDE=web"}, 200, "OK"},
		{"state override true", []string{"HTTP_HEALTHCHECK_SIDECAR_STATE_OVERRIDE=true", "KUBECONFIG=/nonexistent"}, 200, "OK"},
		{"state override TRUE", []string{"HTTP_HEALTHCHECK_SIDECAR_STATE_OVERRIDE=TRUE", "KUBECONFIG=/nonexistent"}, 200, "OK"},
		{"state override false", []string{"HTTP_HEALTHCHECK_SIDECAR_STATE_OVERRIDE=false", "HTTP_HEALTHCHECK_SIDECAR_TARGET_CONTAINER=app", "HTTP_HEALTHCHECK_SIDECAR_TARGET_POD_OVERRIDE=web"}, 500, "UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testutil.StartEnv(t, bin(t), append(append([]string{}, base...), tt.vars...), "--listen", "127.0.0.1:0")
			deadline := time.Now().Add(10 * time.Second)
			// A 500 also answers while the check is still starting: wait
			// for the verdict itself, the check's first state change.
			overridden := strings.Contains(strings.Join(tt.vars, " "), "STATE_OVERRIDE")
			for !overridden && !strings.Contains(p.Logs(), "msg=\"check state changed\"") {
				if time.Now().After(deadline) {
					t.Fatalf("no verdict within 10s:\n%s", p.Logs())
				}
				time.Sleep(50 * time.Millisecond)
			}
			var code int
			var body string
			for {
				code, body = get(p, "/health")
				if (code == tt.code && body == tt.body) || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if code != tt.code || body != tt.body {
				t.Fatalf("/health: %d %q, want %d %q", code, body, tt.code, tt.body)
			}
			for _, path := range []string{"/", "/healthz", "/readyz", "/health/", "/other"} {
				if code, _ := get(p, path); code != 404 {
					t.Fatalf("%s: %d, want 404 (never a redirect)", path, code)
				}
			}
		})
	}
	// A bad override value is a clear start-up error.
	cmd := exec.Command(bin(t))
	cmd.Env = append(os.Environ(), "HTTP_HEALTHCHECK_SIDECAR_STATE_OVERRIDE=yes")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "HTTP_HEALTHCHECK_SIDECAR_STATE_OVERRIDE=\"yes\": must be true or false (any case), or unset") {
		t.Fatalf("bad override: %v %s", err, out)
	}
}

// TestKubePodCheckWorkingSet measures the two designs of the kubernetesPod
// kind by what a cluster bills, the working set of the container's memory
// cgroup (usage minus inactive file pages, as the kubelet computes it),
// side by side in one run: the full static build with one kubernetesPod
// check, client-go inside healthbridge (as shipped); the same built with
// -tags kubehelper, its watch in the healthbridge-kube process; and each
// build with one exec check instead (what linking client-go in costs the
// pods without a kubernetesPod check). Each runs in a memory cgroup of its
// own (its helper too) with its own copy of the binaries, started after
// the page cache is dropped, and is read after 60 s. Figures only, beyond
// the helper process being there exactly in the helper design.
func TestKubePodCheckWorkingSet(t *testing.T) {
	testutil.NeedFull(t, "the kubernetesPod kind")
	testutil.Need(t, os.Getuid() == 0, "root (a memory cgroup per subject)", "run the tests as root")
	env, c := kube(t)
	ns := kubetest.Namespace(t, c)
	kubetest.GrantPodRead(t, c, ns, kubetest.Reader)
	kubetest.Pod(t, c, ns, "web", "app")
	kubetest.SetReady(t, c, ns, "web", map[string]bool{"app": true})
	kc, err := env.Kubeconfig(kubetest.Reader, "")
	if err != nil {
		t.Fatal(err)
	}
	static := testutil.StaticBinary(t, "..")
	withHelper := filepath.Join(t.TempDir(), "healthbridge")
	build := exec.Command("go", "build", "-tags", "kubehelper", "-o", withHelper, "./cmd/healthbridge")
	build.Dir, build.Env = "..", append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags kubehelper: %v\n%s", err, out)
	}
	type subject struct {
		name, bin, checks string
		args              []string
		helper            bool
		cg                *testutil.MemCgroup
		p                 *testutil.Process
	}
	execCheck := "  - {name: t, exec: {command: [\"true\"]}, periodSeconds: 1}\n"
	subjects := []*subject{
		{name: "exec check (floor)", bin: static, checks: execCheck},
		{name: "kubernetesPod, in process (shipped)", bin: static, checks: podCheck("app", "container: app"), args: []string{"--kubeconfig", kc}},
		{name: "kubernetesPod, helper process (-tags kubehelper)", bin: withHelper, checks: podCheck("app", "container: app"), args: []string{"--kubeconfig", kc}, helper: true},
		{name: "exec check, -tags kubehelper build (no client-go)", bin: withHelper, checks: execCheck},
	}
	bins := t.TempDir()
	for i, sub := range subjects {
		// A copy of its own: no two subjects share page-cache pages, which
		// are charged to the cgroup that touched them first. The helper is
		// looked for next to healthbridge.
		dir := filepath.Join(bins, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{sub.bin, filepath.Join(filepath.Dir(static), "healthbridge-kube")} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		sub.bin = filepath.Join(dir, "healthbridge")
	}
	_ = exec.Command("sync").Run()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200); err != nil {
		t.Fatalf("drop the page cache: %v", err)
	}
	for i, sub := range subjects {
		sub.cg = testutil.NewMemCgroup(t, fmt.Sprintf("kubews%d", i))
		cfg := testutil.WriteFile(t, fmt.Sprintf("hb%d.yaml", i), "listen: 127.0.0.1:0\nchecks:\n"+sub.checks)
		// The shell joins the cgroup, then becomes healthbridge.
		sub.p = testutil.StartEnv(t, "/bin/sh", []string{"POD_NAMESPACE=" + ns, "HOSTNAME=web"},
			append([]string{"-c", `echo $$ > "$0" && exec "$@"`, sub.cg.Procs(), sub.bin, "--config", cfg}, sub.args...)...)
	}
	started := time.Now()
	for _, sub := range subjects {
		sub.p.WaitFor(t, "/readyz", readyzHas(200))
	}
	time.Sleep(time.Until(started.Add(60 * time.Second)))
	var lines []string
	for _, sub := range subjects {
		helper := false
		for _, pid := range childrenOf(t, sub.p.Cmd.Process.Pid) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "healthbridge-ku" {
				helper = true
			}
		}
		if helper != sub.helper {
			t.Errorf("%s: a healthbridge-kube child: %v, want %v", sub.name, helper, sub.helper)
		}
		m := sub.cg.Read(t)
		lines = append(lines, fmt.Sprintf("%s: working set %.1f MB (anon %.1f, active file %.1f, inactive file %.1f)", sub.name, m.WorkingSet/1e6, m.Anon/1e6, m.ActiveFile/1e6, m.InactiveFile/1e6))
	}
	testutil.Report(t, "kubernetesPod check, cgroup working set at 60 s, full static build: %s", strings.Join(lines, "; "))
}

// childrenOf lists the pids whose parent is pid, from /proc.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := proc.ReadStat(fmt.Sprintf("/proc/%d/stat", n)); ok && ppid == pid {
			kids = append(kids, n)
		}
	}
	return kids
}

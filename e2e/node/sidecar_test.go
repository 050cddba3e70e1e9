package node

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// TestSeed004SidecarMovesTheEndpoint: an app with no health endpoint,
// healthbridge beside it with a tcpSocket and an httpGet check of its
// port, and the pod's readinessProbe on healthbridge's /readyz (the
// sidecar pattern of docs/kubernetes.md). When the app stops listening the
// kubelet marks the pod unready and the endpoint leaves rotation
// (EndpointSlice ready=false); when it listens again the endpoint returns.
// Nothing is restarted.
func TestSeed004SidecarMovesTheEndpoint(t *testing.T) {
	_, c := node(t)
	ns := namespace(t, c)
	apply(t, c, ns, `
apiVersion: v1
kind: ConfigMap
metadata: {name: hb}
data:
  healthbridge.yaml: |
    checks:
      - name: app-port
        roles: [readiness]
        tcpSocket: {port: 8080}
        periodSeconds: 1
        failureThreshold: 1
      - name: app-http
        roles: [readiness]
        httpGet: {port: 8080, path: /}
        periodSeconds: 1
        failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: `+kubetest.NodeName+`
  terminationGracePeriodSeconds: 5
  containers:
    - name: app
      image: `+imageApp+`
      imagePullPolicy: Never
    - name: healthbridge
      image: `+imageHB+`
      imagePullPolicy: Never
      ports: [{name: health, containerPort: 8642}]
      readinessProbe: {httpGet: {path: /readyz, port: health}, periodSeconds: 1, failureThreshold: 1}
      livenessProbe: {httpGet: {path: /livez, port: health}, periodSeconds: 10}
      volumeMounts: [{name: config, mountPath: /etc/healthbridge, readOnly: true}]
  volumes: [{name: config, configMap: {name: hb}}]
`)
	p := running(t, c, ns, "web")
	ip := p.Status.PodIP
	took := waitEndpoint(t, c, ns, "web", ip, 2*time.Minute, "ready", func(e endpoint) bool { return e.Ready })
	testutil.Report(t, "seed 004 sidecar: endpoint ready %v after the pod ran", took.Round(100*time.Millisecond))

	control(t, ip, "/unlisten")
	if code, body := get("http://" + ip + ":8080/"); code != 0 {
		t.Fatalf("the app still answers after /unlisten: %d %s", code, body)
	}
	down := waitEndpoint(t, c, ns, "web", ip, time.Minute, "ready=false once the app stops listening", func(e endpoint) bool { return e.Found && !e.Ready })
	// The endpoint leaves as soon as one check fails; each check fails at
	// its own next run (period 1 s), which a loaded machine can delay:
	// wait, bounded, for both.
	var code int
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body = get("http://" + ip + ":8642/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "[-]app-port") && strings.Contains(body, "[-]app-http") || time.Now().After(deadline) {
			break
		}
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]app-port") || !strings.Contains(body, "[-]app-http") {
		t.Errorf("/readyz with the app's port closed: %d %q, want 503 with both checks failing", code, body)
	}
	p, _ = waitPod(t, c, ns, "web", 30*time.Second, "healthbridge unready, the app container untouched", func(p *corev1.Pod) bool {
		hb, app := containerStatus(p, "healthbridge"), containerStatus(p, "app")
		return hb != nil && app != nil && !hb.Ready && app.Ready && podCondition(p, corev1.PodReady) == corev1.ConditionFalse
	})
	for _, name := range []string{"app", "healthbridge"} {
		if s := containerStatus(p, name); s.RestartCount != 0 {
			t.Errorf("container %s restarted %d times: readiness must not restart anything", name, s.RestartCount)
		}
	}

	control(t, ip, "/listen")
	up := waitEndpoint(t, c, ns, "web", ip, time.Minute, "ready again once the app listens", func(e endpoint) bool { return e.Ready })
	testutil.Report(t, "seed 004 sidecar: app stops listening -> endpoint ready=false in %v; listens again -> ready in %v (checks and readinessProbe periodSeconds 1)",
		down.Round(100*time.Millisecond), up.Round(100*time.Millisecond))
}

// hostServer is an HTTP server on the node IP (the host's address on the
// pod bridge) whose paths answer 200 or 503 as the test sets them, and
// which counts the requests of each path.
type hostServer struct {
	Host string
	Port int

	mu      sync.Mutex
	ok      map[string]bool
	count   map[string]int
	firstOK map[string]time.Time
}

func newHostServer(t *testing.T) *hostServer {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(kubetest.NodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	h := &hostServer{ok: map[string]bool{}, count: map[string]int{}, firstOK: map[string]time.Time{}, Host: kubetest.NodeIP, Port: l.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.count[r.URL.Path]++
		ok := h.ok[r.URL.Path]
		if ok && h.firstOK[r.URL.Path].IsZero() {
			h.firstOK[r.URL.Path] = time.Now()
		}
		h.mu.Unlock()
		if !ok {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return h
}

func (h *hostServer) set(path string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ok[path] = ok
}

func (h *hostServer) requests(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count[path]
}

func (h *hostServer) firstOKAt(path string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.firstOK[path]
}

// TestKubeletProbesHealthbridge: healthbridge as a native sidecar (an init
// container with restartPolicy: Always) with the probe bodies
// docs/kubernetes.md recommends plus a startupProbe on /startupz, and the
// app container probed by the kubelet's native gRPC probe against
// healthbridge's grpcListen. The app container is held back until
// healthbridge's startup check passes; then the gRPC readiness follows
// healthbridge's readiness checks both ways.
func TestKubeletProbesHealthbridge(t *testing.T) {
	_, c := node(t)
	ns := namespace(t, c)
	hs := newHostServer(t)
	hs.set("/ready", true)
	apply(t, c, ns, fmt.Sprintf(`
apiVersion: v1
kind: ConfigMap
metadata: {name: hb}
data:
  healthbridge.yaml: |
    grpcListen: ":9090"
    checks:
      - name: dependency-up          # start-up: a dependency outside the pod
        roles: [startup]
        httpGet: {host: %[1]s, port: %[2]d, path: /boot}
        periodSeconds: 1
        failureThreshold: 600
      - name: dependency-ready
        roles: [readiness]
        httpGet: {host: %[1]s, port: %[2]d, path: /ready}
        periodSeconds: 1
        failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  nodeName: %[3]s
  terminationGracePeriodSeconds: 5
  initContainers:
    - name: healthbridge
      image: %[4]s
      imagePullPolicy: Never
      restartPolicy: Always
      ports: [{name: health, containerPort: 8642}, {name: grpc, containerPort: 9090}]
      startupProbe: {httpGet: {path: /startupz, port: health}, periodSeconds: 1, failureThreshold: 300}
      readinessProbe: {httpGet: {path: /readyz, port: health}, periodSeconds: 5}
      livenessProbe: {httpGet: {path: /livez, port: health}, periodSeconds: 10}
      volumeMounts: [{name: config, mountPath: /etc/healthbridge, readOnly: true}]
  containers:
    - name: app
      image: %[5]s
      imagePullPolicy: Never
      readinessProbe: {grpc: {port: 9090, service: readiness}, periodSeconds: 1, failureThreshold: 1}
      livenessProbe: {grpc: {port: 9090, service: liveness}, periodSeconds: 2, failureThreshold: 3}
  volumes: [{name: config, configMap: {name: hb}}]
`, hs.Host, hs.Port, kubetest.NodeName, imageHB, imageApp))

	// healthbridge runs, its startup check keeps failing: the kubelet
	// keeps the app container waiting.
	waitPod(t, c, ns, "app", 2*time.Minute, "healthbridge running and not started, the app waiting", func(p *corev1.Pod) bool {
		hb, app := containerStatus(p, "healthbridge"), containerStatus(p, "app")
		return hb != nil && hb.State.Running != nil && hb.Started != nil && !*hb.Started &&
			app != nil && app.State.Waiting != nil
	})
	waitFor(t, time.Minute, "three failed startup checks", func() (bool, string) {
		n := hs.requests("/boot")
		return n >= 3, fmt.Sprintf("%d requests to /boot", n)
	})
	p, err := getPod(c, ns, "app")
	must(t, err)
	if app := containerStatus(p, "app"); app == nil || app.State.Waiting == nil {
		t.Fatalf("the app container started while healthbridge's startup check failed: %s", podSummary(p))
	}
	hs.set("/boot", true)
	p, took := waitPod(t, c, ns, "app", time.Minute, "app running and Ready once /startupz passes", func(p *corev1.Pod) bool {
		app := containerStatus(p, "app")
		return app != nil && app.State.Running != nil && app.Ready && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})
	bootOK := hs.firstOKAt("/boot")
	if started := containerStatus(p, "app").State.Running.StartedAt.Time; started.Before(bootOK.Truncate(time.Second)) {
		t.Errorf("the app container started at %v, before the startup check first passed at %v", started, bootOK)
	}
	testutil.Report(t, "native sidecar: app container started and Ready %v after the startup check's dependency came up", took.Round(100*time.Millisecond))

	// The kubelet's gRPC readiness probe follows healthbridge's readiness.
	hs.set("/ready", false)
	p, down := waitPod(t, c, ns, "app", time.Minute, "app unready via the gRPC probe (NOT_SERVING)", func(p *corev1.Pod) bool {
		app := containerStatus(p, "app")
		return app != nil && !app.Ready
	})
	if app := containerStatus(p, "app"); app.RestartCount != 0 {
		t.Errorf("the app restarted (%d): its gRPC liveness probe must stay SERVING while readiness fails", app.RestartCount)
	}
	hs.set("/ready", true)
	_, up := waitPod(t, c, ns, "app", time.Minute, "app ready again via the gRPC probe", func(p *corev1.Pod) bool {
		app := containerStatus(p, "app")
		return app != nil && app.Ready
	})
	testutil.Report(t, "kubelet gRPC probe on grpcListen: readiness check fails -> app container unready in %v; passes -> ready in %v", down.Round(100*time.Millisecond), up.Round(100*time.Millisecond))
	if hb := containerStatus(p, "healthbridge"); hb == nil || hb.RestartCount != 0 {
		t.Errorf("healthbridge restarted under the recommended livenessProbe: %s", podSummary(p))
	}
}

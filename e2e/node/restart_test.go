package node

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// probeCount reads the kubelet's own count of probes of one container
// (prober_probe_total on /metrics/probes) with the given type
// (Liveness, Readiness, Startup) and result (successful, failed, unknown).
func probeCount(t *testing.T, ns, pod, container, typ, result string) int {
	t.Helper()
	body, err := theNode.ProbeMetrics()
	must(t, err)
	want := []string{`container="` + container + `"`, `namespace="` + ns + `"`, `pod="` + pod + `"`, `probe_type="` + typ + `"`, `result="` + result + `"`}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "prober_probe_total{") {
			continue
		}
		all := true
		for _, w := range want {
			all = all && strings.Contains(line, w)
		}
		if all {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return int(v)
		}
	}
	return 0
}

// TestSeed000ExechealthzRestartsTheCheckedContainer: exechealthz's own
// walkthrough as a pod: healthbridge's exechealthz image with -cmd, and
// the checked container whose livenessProbe is httpGet :8080/healthz.
// When what -cmd checks fails, the kubelet restarts the checked container;
// when it recovers, the restarts stop.
func TestSeed000ExechealthzRestartsTheCheckedContainer(t *testing.T) {
	_, c := node(t)
	ns := namespace(t, c)
	apply(t, c, ns, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: simple}
spec:
  nodeName: %[1]s
  terminationGracePeriodSeconds: 2
  volumes: [{name: shared, emptyDir: {}}]
  containers:
    - name: healthz
      image: %[2]s
      imagePullPolicy: Never
      args: ["-cmd=test ! -e /shared/broken", "-period=1s"]
      ports: [{containerPort: 8080, protocol: TCP}]
      volumeMounts: [{name: shared, mountPath: /shared}]
    - name: checked
      image: %[3]s
      imagePullPolicy: Never
      args: [-app, ":8081"]
      volumeMounts: [{name: shared, mountPath: /shared}]
      livenessProbe:
        httpGet: {path: /healthz, port: 8080}
        periodSeconds: 1
        failureThreshold: 2
`, kubetest.NodeName, imageExechealthz, imageApp))
	ip := running(t, c, ns, "simple").Status.PodIP
	waitGet(t, time.Minute, "exechealthz healthy", "http://"+ip+":8080/healthz", 200)
	control(t, ip, "/touch?f=/shared/broken")
	p, took := waitPod(t, c, ns, "simple", 2*time.Minute, "the kubelet restarted the checked container", func(p *corev1.Pod) bool {
		s := containerStatus(p, "checked")
		return s != nil && s.RestartCount >= 1 && s.LastTerminationState.Terminated != nil
	})
	if s := containerStatus(p, "healthz"); s.RestartCount != 0 {
		t.Errorf("the exechealthz container itself restarted %d times", s.RestartCount)
	}
	// The file is still there: the restarted container keeps failing.
	// Recover through the (new) checked container's control port.
	waitGet(t, time.Minute, "the checked container's control port", "http://"+ip+":9999/rm?f=/shared/broken", 200)
	waitGet(t, time.Minute, "exechealthz healthy again", "http://"+ip+":8080/healthz", 200)
	p, _ = waitPod(t, c, ns, "simple", time.Minute, "the checked container running", func(p *corev1.Pod) bool {
		s := containerStatus(p, "checked")
		return s != nil && s.State.Running != nil
	})
	restarts := containerStatus(p, "checked").RestartCount
	// The restarts stop: the kubelet's own successful liveness probes
	// count past failureThreshold and the count does not move.
	base := probeCount(t, ns, "simple", "checked", "Liveness", "successful")
	waitFor(t, time.Minute, "four more successful liveness probes", func() (bool, string) {
		n := probeCount(t, ns, "simple", "checked", "Liveness", "successful")
		return n >= base+4, fmt.Sprintf("%d successful since", n-base)
	})
	p, err := getPod(c, ns, "simple")
	must(t, err)
	if s := containerStatus(p, "checked"); s.RestartCount != restarts {
		t.Errorf("the checked container restarted again (%d -> %d) after -cmd recovered", restarts, s.RestartCount)
	}
	testutil.Report(t, "seed 000 exechealthz sidecar: -cmd fails -> the kubelet restarted the checked container after %v; restarts stop once it recovers (%d restarts)", took.Round(100*time.Millisecond), restarts)
}

var restartsRE = regexp.MustCompile(`(?m)^healthbridge_child_restarts_total\{reason="liveness"\} (\d+)`)

// TestRunModeActsOnLiveness: healthbridge run as the container's
// entrypoint, its liveness check failing. onLivenessFailure: restart
// restarts the app inside the container (the kubelet's restartCount stays
// 0); exit ends the container with 75 and the kubelet restarts it.
func TestRunModeActsOnLiveness(t *testing.T) {
	_, c := node(t)
	ns := namespace(t, c)
	for _, policy := range []string{"restart", "exit"} {
		apply(t, c, ns, fmt.Sprintf(`
apiVersion: v1
kind: ConfigMap
metadata: {name: hb-%[1]s}
data:
  healthbridge.yaml: |
    onLivenessFailure: %[1]s
    checks:
      - name: app-health
        roles: [liveness]
        httpGet: {port: 8080, path: /healthz}
        periodSeconds: 1
        failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: %[1]s}
spec:
  nodeName: %[2]s
  terminationGracePeriodSeconds: 5
  containers:
    - name: app
      image: %[3]s
      imagePullPolicy: Never
      command: [/healthbridge, run, --config, /etc/healthbridge/healthbridge.yaml, --, /nodeapp]
      volumeMounts: [{name: config, mountPath: /etc/healthbridge, readOnly: true}]
  volumes: [{name: config, configMap: {name: hb-%[1]s}}]
`, policy, kubetest.NodeName, imageApp))
	}
	t.Run("restart", func(t *testing.T) {
		ip := running(t, c, ns, "restart").Status.PodIP
		waitGet(t, time.Minute, "healthbridge live", "http://"+ip+":8642/livez", 200)
		control(t, ip, "/fail")
		took := waitFor(t, time.Minute, "healthbridge restarted the app (healthbridge_child_restarts_total{reason=\"liveness\"} 1)", func() (bool, string) {
			code, body := get("http://" + ip + ":8642/metrics")
			m := restartsRE.FindStringSubmatch(body)
			return code == 200 && m != nil && m[1] == "1", fmt.Sprintf("%d %v", code, m)
		})
		// The new app process starts healthy (/fail is its memory only).
		waitGet(t, time.Minute, "the restarted app healthy", "http://"+ip+":8080/healthz", 200)
		p, err := getPod(c, ns, "restart")
		must(t, err)
		if s := containerStatus(p, "app"); s == nil || s.RestartCount != 0 || s.State.Running == nil {
			t.Errorf("the container was restarted by the kubelet or is not running: %s", podSummary(p))
		}
		testutil.Report(t, "healthbridge run, onLivenessFailure: restart: the app restarted in place %v after its /healthz failed; container restartCount 0", took.Round(100*time.Millisecond))
	})
	t.Run("exit", func(t *testing.T) {
		ip := running(t, c, ns, "exit").Status.PodIP
		waitGet(t, time.Minute, "healthbridge live", "http://"+ip+":8642/livez", 200)
		control(t, ip, "/fail")
		p, took := waitPod(t, c, ns, "exit", time.Minute, "the kubelet restarted the container after healthbridge exited 75", func(p *corev1.Pod) bool {
			s := containerStatus(p, "app")
			return s != nil && s.RestartCount == 1 && s.LastTerminationState.Terminated != nil
		})
		if code := containerStatus(p, "app").LastTerminationState.Terminated.ExitCode; code != 75 {
			t.Errorf("the container exited %d, want 75 (EX_TEMPFAIL)", code)
		}
		testutil.Report(t, "healthbridge run, onLivenessFailure: exit: the container exited 75 and the kubelet restarted it (restartCount 1) %v after /healthz failed", took.Round(100*time.Millisecond))
	})
}

package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// helm runs the helm the tests build from the module proxy against the
// node's API server, and fails the test on an error.
func helm(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	bin, err := kubetest.Helm(func(s string) { logf("%s", s) })
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	cmd := exec.Command(bin, append(args, "--kubeconfig", kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// metric reads one sample of healthbridge's /metrics: the value of the
// first line starting with prefix, or -1.
func metric(url, prefix string) float64 {
	code, body := get(url)
	if code != 200 {
		return -1
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// releasePod returns the one running pod of the release, waiting for it
// (and for any other to be gone) and for it to be Ready.
func releasePod(t *testing.T, c kubernetes.Interface, ns string, not string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(t, 3*time.Minute, "one Ready pod of the release", func() (bool, string) {
		pods, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=hb"})
		if err != nil {
			return false, err.Error()
		}
		var sum []string
		for i := range pods.Items {
			sum = append(sum, pods.Items[i].Name+": "+podSummary(&pods.Items[i]))
		}
		if len(pods.Items) != 1 || string(pods.Items[0].UID) == not || podCondition(&pods.Items[0], corev1.PodReady) != corev1.ConditionTrue {
			return false, strings.Join(sum, " | ")
		}
		pod = &pods.Items[0]
		return true, ""
	})
	return pod
}

// TestHelmOnTheNode: `helm install` of deploy/helm/healthbridge on a real
// node (the image loaded as the chart names it) becomes Ready by the
// kubelet's probes of healthbridge. `helm upgrade` with one check changed
// is applied by the running pod (the kubelet swaps the ConfigMap's
// symlink, healthbridge's content watch sees it): the pod is not
// restarted, the unchanged check keeps its count of runs and makes no
// transition, the changed check starts over. With reload off, the same
// kind of upgrade rolls the pod through the checksum/config annotation.
func TestHelmOnTheNode(t *testing.T) {
	n, c := node(t)
	ns := namespace(t, c)
	kubeconfig, err := n.Kubeconfig(kubetest.Admin, ns)
	must(t, err)
	l, err := net.Listen("tcp", net.JoinHostPort(kubetest.NodeIP, "0"))
	must(t, err)
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	hs := newHostServer(t)
	hs.set("/a", true)
	hs.set("/b", true)
	port := l.Addr().(*net.TCPAddr).Port
	values := func(path string, reload bool) string {
		f := filepath.Join(t.TempDir(), "values.yaml")
		body := fmt.Sprintf(`image: {repository: healthbridge, tag: "0.1.0"}
reload: {enabled: %v}
readinessProbe: {httpGet: {path: /readyz, port: health}, periodSeconds: 1}
terminationGracePeriodSeconds: 5
config:
  checks:
    - {name: steady, roles: [readiness], tcpSocket: {host: %q, port: %d}, periodSeconds: 1}
    - {name: changing, roles: [readiness], httpGet: {host: %q, port: %d, path: %q}, periodSeconds: 1}
`, reload, kubetest.NodeIP, port, hs.Host, hs.Port, path)
		must(t, os.WriteFile(f, []byte(body), 0o644))
		return f
	}
	chart, err := filepath.Abs("../../deploy/helm/healthbridge")
	must(t, err)

	helm(t, kubeconfig, "install", "hb", chart, "--namespace", ns, "-f", values("/a", true))
	pod := releasePod(t, c, ns, "")
	metrics := "http://" + pod.Status.PodIP + ":8642/metrics"
	runs := func(check string) float64 {
		return metric(metrics, `healthbridge_check_probe_total{check="`+check+`",kind="`+map[string]string{"steady": "tcpSocket", "changing": "httpGet"}[check]+`",result="success"}`)
	}
	transitions := func(check string) float64 {
		return metric(metrics, `healthbridge_check_transitions_total{check="`+check+`"`)
	}
	waitFor(t, time.Minute, "ten successful runs of each check", func() (bool, string) {
		a, b := runs("steady"), runs("changing")
		return a >= 10 && b >= 10, fmt.Sprintf("steady %v, changing %v", a, b)
	})
	steadyBefore, steadyTransitions := runs("steady"), transitions("steady")
	changingBefore := runs("changing")
	lastReload := metric(metrics, "healthbridge_config_last_reload_success_timestamp_seconds")

	helm(t, kubeconfig, "upgrade", "hb", chart, "--namespace", ns, "-f", values("/b", true))
	took := waitFor(t, 2*time.Minute, "the pod reloaded the upgraded config", func() (bool, string) {
		v := metric(metrics, "healthbridge_config_last_reload_success_timestamp_seconds")
		return v > lastReload, fmt.Sprintf("last reload %v", v)
	})
	if hs.requests("/b") == 0 {
		waitFor(t, 30*time.Second, "the changed check asking /b", func() (bool, string) { return hs.requests("/b") > 0, "no request yet" })
	}
	p, err := getPod(c, ns, pod.Name)
	must(t, err)
	if p.UID != pod.UID || containerStatus(p, "healthbridge").RestartCount != 0 {
		t.Errorf("the pod was replaced or restarted by the upgrade: %s", podSummary(p))
	}
	if a := runs("steady"); a < steadyBefore {
		t.Errorf("the unchanged check's runs went from %v to %v: its state was not kept", steadyBefore, a)
	}
	if tr := transitions("steady"); tr != steadyTransitions {
		t.Errorf("the unchanged check made transitions across the reload: %v -> %v", steadyTransitions, tr)
	}
	if b := runs("changing"); b >= changingBefore {
		t.Errorf("the changed check's runs went from %v to %v: it did not start over", changingBefore, b)
	}
	testutil.Report(t, "helm upgrade with reload on: the running pod applied the changed config %v after the upgrade (ConfigMap symlink swap by the kubelet, syncFrequency 10s; content watch every 5 s); no restart, the unchanged check kept %v runs", took.Round(100*time.Millisecond), steadyBefore)

	// Reload off: the checksum annotation rolls the pod on a config change.
	helm(t, kubeconfig, "upgrade", "hb", chart, "--namespace", ns, "-f", values("/b", false))
	pod = releasePod(t, c, ns, string(pod.UID))
	annotation := pod.Annotations["checksum/config"]
	if annotation == "" {
		t.Fatal("reload off and no checksum/config annotation on the pod")
	}
	helm(t, kubeconfig, "upgrade", "hb", chart, "--namespace", ns, "-f", values("/a", false))
	rolled := releasePod(t, c, ns, string(pod.UID))
	if rolled.Annotations["checksum/config"] == annotation {
		t.Errorf("the config changed and the checksum/config annotation did not")
	}
	helm(t, kubeconfig, "uninstall", "hb", "--namespace", ns)
	waitFor(t, 2*time.Minute, "the release's pods gone", func() (bool, string) {
		pods, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=hb"})
		return err == nil && len(pods.Items) == 0, fmt.Sprint(err)
	})
}

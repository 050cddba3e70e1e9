package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// recorder keeps every version of the objects a watch delivers, with the
// time each arrived.
type recorder[T any] struct {
	mu   sync.Mutex
	seen []T
	at   []time.Time
	gone bool
}

func (r *recorder[T]) add(o T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, o)
	r.at = append(r.at, time.Now())
}

func (r *recorder[T]) snapshot() ([]T, []time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.seen...), append([]time.Time(nil), r.at...), r.gone
}

// watchPod records every version of pod ns/name until it is deleted.
func watchPod(t *testing.T, c kubernetes.Interface, ns, name string) *recorder[*corev1.Pod] {
	t.Helper()
	w, err := c.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	must(t, err)
	r := &recorder[*corev1.Pod]{}
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			r.add(p)
			if ev.Type == watch.Deleted {
				r.mu.Lock()
				r.gone = true
				r.mu.Unlock()
			}
		}
	}()
	return r
}

// watchEndpoint records the EndpointSlice state of ip for service svc
// each time a slice of it changes.
func watchEndpoint(t *testing.T, c kubernetes.Interface, ns, svc, ip string) *recorder[endpoint] {
	t.Helper()
	w, err := c.DiscoveryV1().EndpointSlices(ns).Watch(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	must(t, err)
	r := &recorder[endpoint]{}
	t.Cleanup(w.Stop)
	go func() {
		for range w.ResultChan() {
			if e, err := endpointOf(c, ns, svc, ip); err == nil {
				r.add(e)
			}
		}
	}()
	return r
}

// terminated returns the last terminated state the recorder saw for the
// container, or nil.
func terminated(r *recorder[*corev1.Pod], container string) *corev1.ContainerStateTerminated {
	pods, _, _ := r.snapshot()
	for i := len(pods) - 1; i >= 0; i-- {
		if s := containerStatus(pods[i], container); s != nil && s.State.Terminated != nil {
			return s.State.Terminated
		}
	}
	return nil
}

// goneTerminated waits for the pod to be deleted and returns the last
// terminated state the recorder saw for container.
func goneTerminated(t *testing.T, pods *recorder[*corev1.Pod], container string) *corev1.ContainerStateTerminated {
	t.Helper()
	waitFor(t, 2*time.Minute, "the pod gone", func() (bool, string) {
		_, _, gone := pods.snapshot()
		return gone, "not deleted yet"
	})
	st := terminated(pods, container)
	if st == nil {
		t.Fatalf("no terminated state of %s seen before the pod went away", container)
	}
	return st
}

// deleteAndWatch deletes the pod with its own grace period, then polls
// url until it answers other than 200 and returns the request time and
// the first time the URL failed.
func deleteAndWatch(t *testing.T, c kubernetes.Interface, ns, pod, url string) (deleted, failed time.Time) {
	t.Helper()
	deleted = time.Now()
	must(t, c.CoreV1().Pods(ns).Delete(context.Background(), pod, metav1.DeleteOptions{}))
	waitFor(t, time.Minute, "GET "+url+" fails after the pod's deletion", func() (bool, string) {
		code, body := get(url)
		if code != 200 {
			failed = time.Now()
			return true, ""
		}
		return false, fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	})
	return deleted, failed
}

// TestTerminationDrainsSidecar: deleting the pod sends healthbridge
// SIGTERM; /readyz keeps passing for drainDelaySeconds, then fails, while
// the EndpointSlice shows the endpoint terminating, first still serving,
// then not (KEP-1669); healthbridge exits 0 after shutdownDelaySeconds,
// within terminationGracePeriodSeconds.
func TestTerminationDrainsSidecar(t *testing.T) {
	_, c := node(t)
	ns := namespace(t, c)
	const drain, shutdown, grace = 4, 8, 30
	apply(t, c, ns, fmt.Sprintf(`
apiVersion: v1
kind: ConfigMap
metadata: {name: hb}
data:
  healthbridge.yaml: |
    drainDelaySeconds: %[1]d
    shutdownDelaySeconds: %[2]d
    checks:
      - name: app-port
        roles: [readiness]
        tcpSocket: {port: 8080}
        periodSeconds: 1
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
  nodeName: %[3]s
  terminationGracePeriodSeconds: %[4]d
  containers:
    - name: app
      image: %[5]s
      imagePullPolicy: Never
      args: [-term-delay, 12s]        # an app that drains its own connections
    - name: healthbridge
      image: %[6]s
      imagePullPolicy: Never
      ports: [{name: health, containerPort: 8642}]
      readinessProbe: {httpGet: {path: /readyz, port: health}, periodSeconds: 1, failureThreshold: 1}
      volumeMounts: [{name: config, mountPath: /etc/healthbridge, readOnly: true}]
  volumes: [{name: config, configMap: {name: hb}}]
`, drain, shutdown, kubetest.NodeName, grace, imageApp, imageHB))
	ip := running(t, c, ns, "web").Status.PodIP
	waitEndpoint(t, c, ns, "web", ip, 2*time.Minute, "ready", func(e endpoint) bool { return e.Ready })
	pods := watchPod(t, c, ns, "web")
	eps := watchEndpoint(t, c, ns, "web", ip)

	deleted, failed := deleteAndWatch(t, c, ns, "web", "http://"+ip+":8642/readyz")
	if d := failed.Sub(deleted); d < drain*time.Second {
		t.Errorf("/readyz failed %v after the deletion, before drainDelaySeconds (%ds)", d, drain)
	}
	hb := goneTerminated(t, pods, "healthbridge")
	took := hb.FinishedAt.Sub(deleted)
	if hb.ExitCode != 0 {
		t.Errorf("healthbridge exited %d (%s), want 0", hb.ExitCode, hb.Reason)
	}
	// FinishedAt has whole seconds.
	if took > grace*time.Second || took < (shutdown-1)*time.Second {
		t.Errorf("healthbridge finished %v after the deletion, want between shutdownDelaySeconds (%ds) and the grace (%ds)", took, shutdown, grace)
	}
	states, _, _ := eps.snapshot()
	servingTerminating, notServing := -1, -1
	for i, e := range states {
		if e.Found && e.Terminating && e.Serving && !e.Ready && servingTerminating < 0 {
			servingTerminating = i
		}
		if e.Found && e.Terminating && !e.Serving && !e.Ready && notServing < 0 {
			notServing = i
		}
	}
	if servingTerminating < 0 || notServing < servingTerminating {
		t.Errorf("EndpointSlice states %v: want terminating+serving (drain) and then terminating, not serving", states)
	}
	testutil.Report(t, "termination (sidecar, drainDelaySeconds %d, shutdownDelaySeconds %d): /readyz failed %v after the delete; healthbridge exited %d after %v; endpoint states %v",
		drain, shutdown, failed.Sub(deleted).Round(100*time.Millisecond), hb.ExitCode, took.Round(time.Second), states)
}

// TestTerminationRunMode: healthbridge run -- APP as the container's
// entrypoint. On deletion /readyz fails at once, the app gets SIGTERM
// only after shutdownDelaySeconds, and the container's exit code is the
// app's.
func TestTerminationRunMode(t *testing.T) {
	_, c := node(t)
	ns := namespace(t, c)
	const shutdown, grace, appCode = 5, 30, 7
	apply(t, c, ns, fmt.Sprintf(`
apiVersion: v1
kind: ConfigMap
metadata: {name: hb}
data:
  healthbridge.yaml: |
    shutdownDelaySeconds: %[1]d
    checks:
      - name: app-port
        roles: [readiness]
        tcpSocket: {port: 8080}
        periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  nodeName: %[2]s
  terminationGracePeriodSeconds: %[3]d
  containers:
    - name: app
      image: %[4]s
      imagePullPolicy: Never
      # the app takes 3 s to stop after its SIGTERM, then exits 7
      command: [/healthbridge, run, --config, /etc/healthbridge/healthbridge.yaml, --, /nodeapp, -term-delay, 3s, -term-code, "%[5]d"]
      ports: [{name: health, containerPort: 8642}]
      readinessProbe: {httpGet: {path: /readyz, port: health}, periodSeconds: 1, failureThreshold: 1}
      volumeMounts: [{name: config, mountPath: /etc/healthbridge, readOnly: true}]
  volumes: [{name: config, configMap: {name: hb}}]
`, shutdown, kubetest.NodeName, grace, imageApp, appCode))
	ip := running(t, c, ns, "app").Status.PodIP
	waitPod(t, c, ns, "app", 2*time.Minute, "Ready", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })
	pods := watchPod(t, c, ns, "app")
	if code, body := get("http://" + ip + ":9999/sigterm"); code != 200 || strings.TrimSpace(body) != "no" {
		t.Fatalf("the app's /sigterm before the deletion: %d %q", code, body)
	}

	deleted, failed := deleteAndWatch(t, c, ns, "app", "http://"+ip+":8642/readyz")
	var appTermed time.Time
	waitFor(t, time.Minute, "the app got SIGTERM", func() (bool, string) {
		code, body := get("http://" + ip + ":9999/sigterm")
		if code == 200 && strings.TrimSpace(body) == "yes" {
			appTermed = time.Now()
			return true, ""
		}
		return false, fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	})
	if d := appTermed.Sub(deleted); d < shutdown*time.Second {
		t.Errorf("the app had SIGTERM %v after the deletion, before shutdownDelaySeconds (%ds)", d, shutdown)
	}
	if !failed.Before(appTermed) {
		t.Errorf("/readyz failed at %v, not before the app's SIGTERM at %v", failed, appTermed)
	}
	st := goneTerminated(t, pods, "app")
	if st.ExitCode != appCode {
		t.Errorf("the container exited %d, want the app's %d", st.ExitCode, appCode)
	}
	if took := st.FinishedAt.Sub(deleted); took > grace*time.Second {
		t.Errorf("the container finished %v after the deletion, beyond the grace (%ds)", took, grace)
	}
	testutil.Report(t, "termination (healthbridge run, shutdownDelaySeconds %d): /readyz failed %v after the delete, the app's SIGTERM seen after %v, container exit code %d (the app's)",
		shutdown, failed.Sub(deleted).Round(100*time.Millisecond), appTermed.Sub(deleted).Round(100*time.Millisecond), st.ExitCode)
}

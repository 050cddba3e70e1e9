package node

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// exampleNS is the namespace deploy/kubernetes/kustomization.yaml sets.
const exampleNS = "healthbridge-example"

// applyKustomization renders deploy/kubernetes as `kubectl apply -k`
// does and creates every object as it is.
func applyKustomization(t *testing.T, c kubernetes.Interface) map[string]int {
	t.Helper()
	n := theNode
	resmap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "../../deploy/kubernetes")
	if err != nil {
		t.Fatalf("kustomize build deploy/kubernetes: %v", err)
	}
	rc := n.RESTConfig(kubetest.Admin)
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	must(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(rc)
	must(t, err)
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, c, exampleNS)
		}
		_ = c.CoreV1().Namespaces().Delete(ctx, exampleNS, metav1.DeleteOptions{})
		waitFor(t, 2*time.Minute, "namespace "+exampleNS+" gone", func() (bool, string) {
			_, err := c.CoreV1().Namespaces().Get(ctx, exampleNS, metav1.GetOptions{})
			return isNotFound(err), fmt.Sprint(err)
		})
	})
	kinds := map[string]int{}
	for _, res := range resmap.Resources() {
		m, err := res.Map()
		must(t, err)
		obj := &unstructured.Unstructured{Object: m}
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		must(t, err)
		if gvk.Kind == "Namespace" {
			_, err = dyn.Resource(mapping.Resource).Create(ctx, obj, metav1.CreateOptions{})
		} else {
			_, err = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace()).Create(ctx, obj, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("create %s %s: %v", gvk.Kind, obj.GetName(), err)
		}
		kinds[gvk.Kind]++
	}
	return kinds
}

// TestManifestsReachReady: every manifest in deploy/kubernetes, applied
// as it is with `kubectl apply -k` (the images loaded under the names the
// kustomization sets), reaches Ready on a real node: the Deployment's two
// pods and the DaemonSet's, each with healthbridge's kubernetesPod check
// reading its own pod through the in-cluster service account.
func TestManifestsReachReady(t *testing.T) {
	_, c := node(t)
	kinds := applyKustomization(t, c)
	for _, k := range []string{"Deployment", "DaemonSet"} {
		if kinds[k] == 0 {
			t.Fatalf("no %s in deploy/kubernetes", k)
		}
	}
	ctx := context.Background()
	took := waitFor(t, 3*time.Minute, "every pod of deploy/kubernetes Ready", func() (bool, string) {
		pods, err := c.CoreV1().Pods(exampleNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var sum []string
		ready := 0
		for i := range pods.Items {
			p := &pods.Items[i]
			if podCondition(p, corev1.PodReady) == corev1.ConditionTrue {
				ready++
			}
			sum = append(sum, p.Name+": "+podSummary(p))
		}
		// 2 replicas of the Deployment, 1 DaemonSet pod on the one node.
		return len(pods.Items) == 3 && ready == 3, strings.Join(sum, " | ")
	})
	pods, err := c.CoreV1().Pods(exampleNS).List(ctx, metav1.ListOptions{})
	must(t, err)
	for i := range pods.Items {
		p := &pods.Items[i]
		for _, s := range p.Status.ContainerStatuses {
			if s.RestartCount != 0 {
				t.Errorf("%s: container %s restarted %d times", p.Name, s.Name, s.RestartCount)
			}
		}
		port := "8642"
		if strings.HasPrefix(p.Name, "udp-echo-node") {
			port = "18080"
		}
		// The pod is Ready when the kubelet says so; healthbridge learns
		// it from its watch at its next check (periodSeconds 2).
		waitGet(t, 30*time.Second, p.Name+": healthbridge ready", "http://"+p.Status.PodIP+":"+port+"/readyz", 200)
	}
	testutil.Report(t, "deploy/kubernetes (kubectl apply -k as it is): %d pods Ready in %v", len(pods.Items), took.Round(100*time.Millisecond))
}

// readyzPolls records every failing answer of a URL polled every 100 ms.
type readyzPolls struct {
	mu    sync.Mutex
	fails []time.Time
}

func pollReadyz(t *testing.T, url string) *readyzPolls {
	r := &readyzPolls{}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if code, _ := get(url); code != 200 {
				r.mu.Lock()
				r.fails = append(r.fails, time.Now())
				r.mu.Unlock()
			}
		}
	}()
	return r
}

// firstFailBetween is the first failing answer in [from, to], or zero.
func (r *readyzPolls) firstFailBetween(from, to time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.fails {
		if !f.Before(from) && !f.After(to) {
			return f
		}
	}
	return time.Time{}
}

// unreadyWindow waits for the kubelet to restart udp-echo for the n-th
// time and report it ready again, and returns when the watch first saw it
// unready after killed and when it first saw it ready again.
func unreadyWindow(t *testing.T, pods *recorder[*corev1.Pod], n int32, killed time.Time) (from, to time.Time) {
	t.Helper()
	waitFor(t, 3*time.Minute, fmt.Sprintf("udp-echo restarted %d times and ready again", n), func() (bool, string) {
		seen, at, _ := pods.snapshot()
		from, to = time.Time{}, time.Time{}
		for i, p := range seen {
			s := containerStatus(p, "udp-echo")
			if s == nil || at[i].Before(killed) {
				continue
			}
			if from.IsZero() && !s.Ready {
				from = at[i]
			}
			if !from.IsZero() && s.Ready && s.RestartCount >= n {
				to = at[i]
				return true, ""
			}
		}
		if len(seen) == 0 {
			return false, "no pod versions seen"
		}
		return false, podSummary(seen[len(seen)-1])
	})
	return from, to
}

// appPid finds the host pid of the process running exe with no
// arguments in the pod with uid (the node's containers are this machine's processes).
func appPid(t *testing.T, uid, exe string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || string(cl) != exe+"\x00" { // not `exe check`, the probe's own process
			continue
		}
		cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err != nil {
			continue
		}
		// The kubelet's cgroupfs names: pod<uid>, dashes kept.
		if strings.Contains(string(cg), "pod"+uid) {
			return pid
		}
	}
	return 0
}

// TestSeed001ReadinessFollowsTheKubelet: deploy/kubernetes's UDP service
// with healthbridge as its sidecar (a kubernetesPod check of the
// udp-echo container). healthbridge's /readyz follows the readiness the
// kubelet writes for the app: when the app hangs (SIGSTOP: its exec
// readinessProbe times out) and when the kubelet restarts it after it is
// killed. The pod's service account may read pods in its namespace and
// nothing else.
func TestSeed001ReadinessFollowsTheKubelet(t *testing.T) {
	_, c := node(t)
	applyKustomization(t, c)
	ctx := context.Background()
	var pod *corev1.Pod
	waitFor(t, 3*time.Minute, "a udp-echo pod Ready", func() (bool, string) {
		pods, err := c.CoreV1().Pods(exampleNS).List(ctx, metav1.ListOptions{LabelSelector: "app=udp-echo"})
		if err != nil {
			return false, err.Error()
		}
		for i := range pods.Items {
			if podCondition(&pods.Items[i], corev1.PodReady) == corev1.ConditionTrue {
				pod = &pods.Items[i]
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d pods, none Ready", len(pods.Items))
	})
	readyz := "http://" + pod.Status.PodIP + ":8642/readyz"
	appReady := func() (bool, error) {
		p, err := getPod(c, exampleNS, pod.Name)
		if err != nil {
			return false, err
		}
		s := containerStatus(p, "udp-echo")
		return s != nil && s.Ready, nil
	}
	// follow waits for the kubelet to write want for the app container,
	// then for /readyz to agree, and returns how long /readyz lagged.
	follow := func(want bool, what string) time.Duration {
		t.Helper()
		waitFor(t, 2*time.Minute, "the kubelet writes udp-echo ready="+strconv.FormatBool(want)+" ("+what+")", func() (bool, string) {
			r, err := appReady()
			return err == nil && r == want, fmt.Sprint(r, err)
		})
		wantCode := 503
		if want {
			wantCode = 200
		}
		return waitGet(t, 30*time.Second, what, readyz, wantCode)
	}
	pid := appPid(t, string(pod.UID), "/udp-echo")
	if pid == 0 {
		t.Fatal("no /udp-echo process of the pod found on the host")
	}
	must(t, syscall.Kill(pid, syscall.SIGSTOP))
	stopped := follow(false, "the app hung")
	must(t, syscall.Kill(pid, syscall.SIGCONT))
	resumed := follow(true, "the app resumed")
	// Killed: the kubelet restarts the container, which is unready until
	// its readinessProbe (periodSeconds 5) passes. A window shorter than
	// healthbridge's period (2 s) may pass between two of its checks, so
	// the app is killed again (the kubelet's restart back-off lengthens
	// the window) until one lasts 5 s; /readyz must fail within it.
	pods := watchPod(t, c, exampleNS, pod.Name)
	polls := pollReadyz(t, readyz)
	var windows []string
	var killedLag time.Duration
	for attempt := 1; ; attempt++ {
		pid := appPid(t, string(pod.UID), "/udp-echo")
		if pid == 0 {
			t.Fatal("no running /udp-echo process of the pod found on the host")
		}
		killed := time.Now()
		must(t, syscall.Kill(pid, syscall.SIGKILL))
		from, to := unreadyWindow(t, pods, int32(attempt), killed)
		windows = append(windows, to.Sub(from).Round(100*time.Millisecond).String())
		if to.Sub(from) >= 5*time.Second {
			first := polls.firstFailBetween(from, to)
			if first.IsZero() {
				t.Fatalf("the kubelet wrote udp-echo unready for %v (%v to %v) after a kill; /readyz never failed in it", to.Sub(from), from, to)
			}
			killedLag = first.Sub(from)
			break
		}
		if attempt == 5 {
			t.Fatalf("five kills, no unready window of 5 s (%v)", windows)
		}
	}
	restarted := follow(true, "the restarted app ready")
	testutil.Report(t, "seed 001 (kubernetesPod, periodSeconds 2): /readyz followed the kubelet's readiness %v (app hung), %v (resumed), %v (killed; the kubelet's unready windows %v), %v (restarted and ready)",
		stopped.Round(100*time.Millisecond), resumed.Round(100*time.Millisecond), killedLag.Round(100*time.Millisecond), windows, restarted.Round(100*time.Millisecond))
	p, err := getPod(c, exampleNS, pod.Name)
	must(t, err)
	if s := containerStatus(p, "healthbridge"); s.RestartCount != 0 {
		t.Errorf("healthbridge restartCount %d, want 0", s.RestartCount)
	}

	// Least privilege, as the API server decides it for the pod's account.
	sa := "system:serviceaccount:" + exampleNS + ":" + pod.Spec.ServiceAccountName
	for _, tc := range []struct {
		attrs authorizationv1.ResourceAttributes
		allow bool
	}{
		{authorizationv1.ResourceAttributes{Namespace: exampleNS, Verb: "get", Resource: "pods", Name: pod.Name}, true},
		{authorizationv1.ResourceAttributes{Namespace: exampleNS, Verb: "watch", Resource: "pods"}, true},
		{authorizationv1.ResourceAttributes{Namespace: "default", Verb: "get", Resource: "pods"}, false},
		{authorizationv1.ResourceAttributes{Namespace: exampleNS, Verb: "get", Resource: "secrets"}, false},
		{authorizationv1.ResourceAttributes{Namespace: exampleNS, Verb: "patch", Resource: "pods", Name: pod.Name}, false},
		{authorizationv1.ResourceAttributes{Namespace: exampleNS, Verb: "get", Resource: "configmaps"}, false},
	} {
		sar, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + exampleNS}, ResourceAttributes: &tc.attrs,
		}}, metav1.CreateOptions{})
		must(t, err)
		if sar.Status.Allowed != tc.allow {
			t.Errorf("%s %s %s in %q: allowed=%v, want %v", sa, tc.attrs.Verb, tc.attrs.Resource, tc.attrs.Namespace, sar.Status.Allowed, tc.allow)
		}
	}
}

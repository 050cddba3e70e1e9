// Package node tests healthbridge inside a real Kubernetes node: a
// kubelet and kube-controller-manager (built from the Go module proxy)
// beside a containerd of their own, pods on a bridge with no uplink. The
// oracle is what the kubelet and the controllers write: pod conditions,
// container ready/restartCount/lastState, EndpointSlice conditions. Logs
// are read from the node's pod-log directory, never through the API
// server.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// The images as the pods name them. healthbridge's and the example app's
// are the names deploy/kubernetes/kustomization.yaml sets.
const (
	imageHB          = "healthbridge:0.1.0"
	imageExample     = "healthbridge-example/udp-echo:0.1.0"
	imageExechealthz = "healthbridge-exechealthz:test"
	imageApp         = "healthbridge-nodeapp:test"
)

var (
	nodeOnce sync.Once
	theNode  *kubetest.Node
	nodeErr  error
	// dockerTags are the images built in Docker by this process, removed
	// at the end.
	dockerTags []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theNode != nil {
		start := time.Now()
		theNode.Stop()
		fmt.Fprintf(os.Stderr, "node: stopped in %v\n", time.Since(start).Round(100*time.Millisecond))
		if left := theNode.Leftovers(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "node: Stop left %v\n", left)
			code = 1
		}
	}
	for _, tag := range dockerTags {
		_ = exec.Command("docker", "rmi", "--force", tag).Run()
	}
	os.Exit(code)
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "node: "+format+"\n", args...) }

// node returns the package's node with every test image loaded, started
// once; it skips (fails under CI=1) where the machine cannot run one.
func node(t *testing.T) (*kubetest.Node, kubernetes.Interface) {
	t.Helper()
	testutil.NeedFull(t, "the full image (kubernetesPod, grpcListen)")
	nodeOnce.Do(func() {
		start := time.Now()
		var dir string
		dir, nodeErr = os.MkdirTemp("", "hb-node")
		if nodeErr != nil {
			return
		}
		theNode, nodeErr = kubetest.StartNode(dir, func(s string) { logf("%s", s) })
		if nodeErr != nil {
			return
		}
		started := time.Since(start)
		t0 := time.Now()
		nodeErr = loadImages(t)
		testutil.Report(t, "real node (build if needed, start, Ready) %v; test images built and loaded in %v", started.Round(100*time.Millisecond), time.Since(t0).Round(100*time.Millisecond))
	})
	var un *kubetest.UnavailableError
	if errors.As(nodeErr, &un) {
		testutil.Need(t, false, un.Error(), "run as root with containerd, runc, containernetworking-plugins and Docker")
	}
	if nodeErr != nil {
		t.Fatalf("real node: %v", nodeErr)
	}
	c, err := theNode.Client(kubetest.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return theNode, c
}

// loadImages builds the images in Docker under tags of this process and
// loads them into the node under the names the pods use.
func loadImages(t *testing.T) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	pid := os.Getpid()
	tag := func(name string) string {
		s := fmt.Sprintf("healthbridge-node-e2e/%s:%d", name, pid)
		dockerTags = append(dockerTags, s)
		return s
	}
	hb, exz, ex, app := tag("hb"), tag("exechealthz"), tag("example"), tag("app")
	steps := []*exec.Cmd{
		exec.Command(filepath.Join(root, "deploy/build-image.sh"), hb),
		exec.Command(filepath.Join(root, "deploy/build-image.sh"), "--exechealthz", exz),
		exec.Command(filepath.Join(root, "deploy/build-example-image.sh"), ex),
	}
	for _, c := range steps {
		c.Dir = root
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(c.Args, " "), err, out)
		}
	}
	if err := kubetest.BuildAppImage(root, app, testutil.StaticBinary(t, root)); err != nil {
		return err
	}
	for src, name := range map[string]string{hb: imageHB, exz: imageExechealthz, ex: imageExample, app: imageApp} {
		if err := theNode.LoadImageAs(src, name); err != nil {
			return err
		}
	}
	return nil
}

// namespace creates a fresh namespace and waits for what the controller
// manager puts in it (the "default" ServiceAccount, kube-root-ca.crt);
// at the end it is deleted and its pods waited for.
func namespace(t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	ctx := context.Background()
	ns, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hb-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name := ns.Name
	waitFor(t, time.Minute, "the default ServiceAccount and kube-root-ca.crt in "+name, func() (bool, string) {
		_, e1 := c.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		_, e2 := c.CoreV1().ConfigMaps(name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return e1 == nil && e2 == nil, fmt.Sprint(e1, e2)
	})
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, c, name)
		}
		_ = c.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			pods, err := c.CoreV1().Pods(name).List(ctx, metav1.ListOptions{})
			if err == nil && len(pods.Items) == 0 {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Logf("pods of %s still present 90s after its deletion", name)
	})
	return name
}

// dumpNamespace logs every pod's status and each container's log.
func dumpNamespace(t *testing.T, c kubernetes.Interface, ns string) {
	pods, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		st, _ := yaml.Marshal(p.Status)
		t.Logf("pod %s status:\n%s", p.Name, st)
		for _, ctr := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			if l, err := theNode.PodLog(ns, p.Name, ctr.Name); err == nil {
				t.Logf("pod %s container %s log:\n%s", p.Name, ctr.Name, tailString(l, 3000))
			}
		}
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitFor polls cond every 200ms until it holds, failing the test after
// limit with cond's last description. It returns the time it took.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(limit)
	var last string
	for {
		ok, desc := cond()
		if ok {
			return time.Since(start)
		}
		last = desc
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v (last seen: %s)", what, limit, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apply creates the objects of a multi-document YAML in ns.
func apply(t *testing.T, c kubernetes.Interface, ns, manifest string) {
	t.Helper()
	ctx := context.Background()
	for _, doc := range strings.Split(manifest, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		var err error
		switch meta.Kind {
		case "Pod":
			var o corev1.Pod
			must(t, yaml.UnmarshalStrict([]byte(doc), &o))
			_, err = c.CoreV1().Pods(ns).Create(ctx, &o, metav1.CreateOptions{})
		case "ConfigMap":
			var o corev1.ConfigMap
			must(t, yaml.UnmarshalStrict([]byte(doc), &o))
			_, err = c.CoreV1().ConfigMaps(ns).Create(ctx, &o, metav1.CreateOptions{})
		case "Service":
			var o corev1.Service
			must(t, yaml.UnmarshalStrict([]byte(doc), &o))
			_, err = c.CoreV1().Services(ns).Create(ctx, &o, metav1.CreateOptions{})
		default:
			t.Fatalf("apply: kind %q not handled", meta.Kind)
		}
		if err != nil {
			t.Fatalf("create %s: %v", meta.Kind, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func getPod(c kubernetes.Interface, ns, name string) (*corev1.Pod, error) {
	return c.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
}

// containerStatus returns the named container's status (containers and
// init containers), or nil.
func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return "None"
}

// waitPod waits until cond holds for pod ns/name.
func waitPod(t *testing.T, c kubernetes.Interface, ns, name string, limit time.Duration, what string, cond func(*corev1.Pod) bool) (*corev1.Pod, time.Duration) {
	t.Helper()
	var pod *corev1.Pod
	took := waitFor(t, limit, name+": "+what, func() (bool, string) {
		p, err := getPod(c, ns, name)
		if err != nil {
			return false, err.Error()
		}
		pod = p
		return cond(p), podSummary(p)
	})
	return pod, took
}

// running waits for the pod to run with an IP and returns it.
func running(t *testing.T, c kubernetes.Interface, ns, name string) *corev1.Pod {
	t.Helper()
	p, _ := waitPod(t, c, ns, name, 2*time.Minute, "Running", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != ""
	})
	return p
}

func podSummary(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s Ready %s", p.Status.Phase, podCondition(p, corev1.PodReady))
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		state := "?"
		switch {
		case s.State.Running != nil:
			state = "running"
		case s.State.Waiting != nil:
			state = "waiting " + s.State.Waiting.Reason
		case s.State.Terminated != nil:
			state = fmt.Sprintf("terminated %d", s.State.Terminated.ExitCode)
		}
		fmt.Fprintf(&b, "; %s ready=%v restarts=%d %s", s.Name, s.Ready, s.RestartCount, state)
	}
	return b.String()
}

// endpoint is the EndpointSlice state of one pod IP for a Service.
type endpoint struct {
	Found                       bool
	Ready, Serving, Terminating bool
}

func (e endpoint) String() string {
	if !e.Found {
		return "absent"
	}
	return fmt.Sprintf("ready=%v serving=%v terminating=%v", e.Ready, e.Serving, e.Terminating)
}

func endpointOf(c kubernetes.Interface, ns, svc, ip string) (endpoint, error) {
	slices, err := c.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return endpoint{}, err
	}
	b := func(p *bool) bool { return p != nil && *p }
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				if a == ip {
					return endpoint{Found: true, Ready: b(e.Conditions.Ready), Serving: b(e.Conditions.Serving), Terminating: b(e.Conditions.Terminating)}, nil
				}
			}
		}
	}
	return endpoint{}, nil
}

// waitEndpoint waits until the pod IP's endpoint of svc satisfies cond.
func waitEndpoint(t *testing.T, c kubernetes.Interface, ns, svc, ip string, limit time.Duration, what string, cond func(endpoint) bool) time.Duration {
	t.Helper()
	return waitFor(t, limit, "EndpointSlice of "+svc+": "+what, func() (bool, string) {
		e, err := endpointOf(c, ns, svc, ip)
		if err != nil {
			return false, err.Error()
		}
		return cond(e), e.String()
	})
}

// get does one HTTP GET with a short timeout: the status code (0 when the
// request failed) and the body.
func get(url string) (int, string) {
	client := &http.Client{Timeout: 3 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

// waitGet waits until GET url answers want and returns how long that took.
func waitGet(t *testing.T, limit time.Duration, what, url string, want int) time.Duration {
	t.Helper()
	return waitFor(t, limit, what+" (GET "+url+" "+fmt.Sprint(want)+")", func() (bool, string) {
		code, body := get(url)
		return code == want, fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	})
}

// control sends a control request to a nodeapp and fails the test unless
// it answers 200. A refused connection is retried for up to a minute: the
// app's process may not be listening yet (under healthbridge run, /livez
// answers before the child has opened its ports). Every control request
// the tests send is idempotent, so a retry cannot act twice.
func control(t *testing.T, ip, path string) {
	t.Helper()
	url := "http://" + ip + ":9999" + path
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := get(url)
		if code == 200 {
			return
		}
		if code != 0 || !strings.Contains(body, "connection refused") || time.Now().After(deadline) {
			t.Fatalf("nodeapp control %s at %s: %d %s", path, ip, code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

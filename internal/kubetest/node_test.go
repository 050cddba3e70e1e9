package kubetest

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

// startNode starts a node or skips (fails under CI=1) when the machine
// cannot run one.
func startNode(t *testing.T) *Node {
	t.Helper()
	dir, err := os.MkdirTemp("", "hb-node")
	if err != nil {
		t.Fatal(err)
	}
	n, err := StartNode(dir, func(s string) { t.Log(s) })
	var un *UnavailableError
	if errors.As(err, &un) {
		testutil.Need(t, false, un.Error(), "run as root with containerd, runc, containernetworking-plugins and Docker")
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// runPausePod creates a pod of one pause container (a network namespace
// on the bridge, a projected token volume: the mounts and interfaces a
// node must clean) and waits for it to run.
func runPausePod(t *testing.T, c kubernetes.Interface) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pause"}, Spec: corev1.PodSpec{
		NodeName: NodeName, TerminationGracePeriodSeconds: new(int64),
		Containers: []corev1.Container{{Name: "pause", Image: PauseImage, ImagePullPolicy: corev1.PullNever}},
	}}
	if _, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := c.CoreV1().Pods("default").Get(ctx, "pause", metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			if !strings.HasPrefix(p.Status.PodIP, strings.TrimSuffix(NodeIP, "1")) {
				t.Fatalf("pod IP %s is not on the node's bridge %s", p.Status.PodIP, PodSubnet)
			}
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not running after 2m: %+v %v", p.Status, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestNodeLeavesNothing: a node whose test process died (its kubelet,
// containerd and API server killed, its running pod's shim and containers
// left) is removed by the next start, and a node stopped with Stop leaves
// no process, mount, cgroup, interface, netns, log link, host directory or
// file behind.
func TestNodeLeavesNothing(t *testing.T) {
	first := startNode(t)
	c, err := first.Client(Admin)
	if err != nil {
		t.Fatal(err)
	}
	runPausePod(t, c)
	if len(shims(first.Socket)) == 0 {
		t.Fatal("a running pod and no containerd-shim: the test would prove nothing")
	}
	if len(mountsUnder(first.Dir)) == 0 {
		t.Fatal("a running pod and no mount under the node's directory: the test would prove nothing")
	}
	first.netns = sandboxNetns(first.Dir)
	if len(first.netns) == 0 {
		t.Fatal("a running pod and no network namespace found: the test would prove nothing")
	}
	// The test process "dies": what Pdeathsig kills dies, the rest stays.
	for _, cmd := range first.procs {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	first.fwd.Close()
	first.fwdWG.Wait()
	first.Env.Stop()
	first.lock.Close()
	first.stopped = true

	second := startNode(t)
	defer second.Stop()
	for _, l := range first.Leftovers() {
		// The bridge, its host leg, cgroups, host directories and the
		// record have the same names for the second node.
		if strings.HasPrefix(l, "interface ") || strings.HasPrefix(l, "cgroup ") || strings.HasPrefix(l, "host directory ") || l == nodeRecord {
			continue
		}
		t.Errorf("the next start left %s of the dead node", l)
	}
	c2, err := second.Client(Admin)
	if err != nil {
		t.Fatal(err)
	}
	runPausePod(t, c2)
	second.Stop()
	for _, l := range second.Leftovers() {
		t.Errorf("Stop left %s", l)
	}
}

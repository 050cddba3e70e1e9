// Command kubeexec measures, on a real Kubernetes node on this machine
// (kubelet, containerd, runc; internal/kubetest), what an exec probe
// costs the node when the kubelet runs it and when a healthbridge sidecar
// runs the same command at the same period:
//
//	go run ./bench/kubeexec [-pods 20] [-period 1s] [-window 30s]
//
// Three setups run one after the other on the same node, each with -pods
// pods of the same application container:
//
//   - floor: no probe at all;
//   - kubelet: the app's readinessProbe is `exec: [/bin/true]` every
//     -period: kubelet → containerd → shim → runc exec into the container;
//   - healthbridge: no exec probe in the pod spec; a healthbridge sidecar
//     (the same image) runs an exec check `/bin/true` every -period, one
//     fork/exec in its own container, and the kubelet probes healthbridge
//     with the probes the docs recommend (httpGet /readyz every 5 s,
//     /livez every 10 s).
//
// For each, once every pod runs (and is Ready where it has probes) and
// has settled, the CPU time used over -window is read from cgroup v1
// cpuacct: the pods' cgroup (every container, every process exec'd into
// one, healthbridge itself) and the node agents' cgroup (kubelet,
// containerd, the shims and the runc processes they start), each second
// counted once. Per probe = (setup − floor) / probes run. The probe
// latency is the mean of the kubelet's prober_probe_duration_seconds
// (from its /metrics/probes) and of healthbridge's
// healthbridge_check_duration_seconds. Figures only, nothing asserted.
// Needs root, containerd, runc, containernetworking-plugins and Docker.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/healthbridge/healthbridge/internal/kubetest"
)

const image = "healthbridge-bench/kubeexec:1"

func main() {
	pods := flag.Int("pods", 20, "pods per setup")
	period := flag.Duration("period", time.Second, "probe period (whole seconds)")
	window := flag.Duration("window", 30*time.Second, "measurement window")
	settle := flag.Duration("settle", 10*time.Second, "time after every pod is up before measuring")
	flag.Parse()
	if err := run(*pods, *period, *window, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "kubeexec:", err)
		os.Exit(1)
	}
}

type result struct {
	name         string
	pods, agents float64 // CPU seconds over the window
	probes       float64 // probes run over the window
	latency      float64 // mean probe latency, seconds
}

func run(nPods int, period, window, settle time.Duration) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kubeexec")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hb := filepath.Join(dir, "healthbridge")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", hb, "./cmd/healthbridge")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	tag := fmt.Sprintf("healthbridge-bench/kubeexec:%d", os.Getpid())
	if err := kubetest.BuildAppImage(root, tag, hb); err != nil {
		return err
	}
	defer exec.Command("docker", "rmi", "--force", tag).Run() //nolint:errcheck
	log := func(s string) { fmt.Fprintln(os.Stderr, "kubeexec:", s) }
	start := time.Now()
	node, err := kubetest.StartNode(filepath.Join(dir, "node"), log)
	if err != nil {
		return err
	}
	defer node.Stop()
	log(fmt.Sprintf("node up in %v", time.Since(start).Round(100*time.Millisecond)))
	if err := node.LoadImageAs(tag, image); err != nil {
		return err
	}
	c, err := node.Client(kubetest.Admin)
	if err != nil {
		return err
	}
	var results []result
	for _, setup := range []string{"floor", "kubelet", "healthbridge"} {
		r, err := measureSetup(node, c, setup, nPods, period, window, settle)
		if err != nil {
			return fmt.Errorf("%s: %w", setup, err)
		}
		log(fmt.Sprintf("%s: pods %.2f s, agents %.2f s, %0.f probes", setup, r.pods, r.agents, r.probes))
		results = append(results, r)
	}
	floor := results[0]
	fmt.Printf("exec probe `/bin/true` every %v in %d pods, CPU over %v (cgroup cpuacct), against the same pods with no probe:\n", period, nPods, window)
	fmt.Printf("%-34s %12s %12s %10s %12s %14s %12s\n", "setup", "pods CPU s", "agents CPU s", "cores busy", "probes run", "CPU ms/probe", "latency ms")
	fmt.Printf("%-34s %12.2f %12.2f %10.2f %12s %14s %12s\n", "floor (no probe)", floor.pods, floor.agents, (floor.pods+floor.agents)/window.Seconds(), "-", "-", "-")
	per := map[string]float64{}
	for _, r := range results[1:] {
		extra := (r.pods + r.agents) - (floor.pods + floor.agents)
		per[r.name] = extra / r.probes * 1000
		name := "kubelet exec probe"
		if r.name == "healthbridge" {
			name = "healthbridge exec check (sidecar)"
		}
		fmt.Printf("%-34s %12.2f %12.2f %10.2f %12.0f %14.3f %12.2f\n", name, r.pods, r.agents, (r.pods+r.agents)/window.Seconds(), r.probes, per[r.name], r.latency*1000)
	}
	if want := float64(nPods) * window.Seconds() / period.Seconds(); results[1].probes < 0.9*want {
		fmt.Printf("(the kubelet ran %0.f of the %0.f probes due: the node's CPU was saturated)\n", results[1].probes, want)
	}
	if per["healthbridge"] > 0 {
		fmt.Printf("the kubelet's exec probe costs the node %.1f× the CPU of the same check in healthbridge\n", per["kubelet"]/per["healthbridge"])
	}
	return nil
}

func measureSetup(node *kubetest.Node, c kubernetes.Interface, setup string, nPods int, period, window, settle time.Duration) (result, error) {
	ctx := context.Background()
	ns, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kubeexec-"}}, metav1.CreateOptions{})
	if err != nil {
		return result{}, err
	}
	defer func() {
		_ = c.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			if _, err := c.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); err != nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	// Pods are refused until the controller manager made "default".
	for saDeadline := time.Now().Add(time.Minute); time.Now().Before(saDeadline); time.Sleep(200 * time.Millisecond) {
		if _, err := c.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		}
	}
	secs := int32(period / time.Second)
	if setup == "healthbridge" {
		cfg := fmt.Sprintf("checks:\n  - name: exec\n    exec: {command: [/bin/true]}\n    periodSeconds: %d\n", secs)
		if _, err := c.CoreV1().ConfigMaps(ns.Name).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hb"}, Data: map[string]string{"healthbridge.yaml": cfg}}, metav1.CreateOptions{}); err != nil {
			return result{}, err
		}
	}
	for i := 0; i < nPods; i++ {
		app := corev1.Container{Name: "app", Image: image, ImagePullPolicy: corev1.PullNever}
		spec := corev1.PodSpec{NodeName: kubetest.NodeName, TerminationGracePeriodSeconds: new(int64)}
		switch setup {
		case "kubelet":
			app.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/true"}}}, PeriodSeconds: secs}
		case "healthbridge":
			spec.Containers = append(spec.Containers, corev1.Container{
				Name: "healthbridge", Image: image, ImagePullPolicy: corev1.PullNever,
				Command:        []string{"/healthbridge", "--config", "/etc/healthbridge/healthbridge.yaml"},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8642)}}, PeriodSeconds: 5},
				LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/livez", Port: intstr.FromInt32(8642)}}, PeriodSeconds: 10},
				VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: "/etc/healthbridge", ReadOnly: true}},
			})
			spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "hb"}}}}}
		}
		spec.Containers = append([]corev1.Container{app}, spec.Containers...)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%02d", i)}, Spec: spec}
		if _, err := c.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return result{}, err
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	var ips []string
	for {
		list, err := c.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
		if err != nil {
			return result{}, err
		}
		ips = ips[:0]
		for _, p := range list.Items {
			ok := p.Status.Phase == corev1.PodRunning
			if setup != "floor" {
				ok = ok && podReady(&p)
			}
			if ok {
				ips = append(ips, p.Status.PodIP)
			}
		}
		if len(ips) == nPods {
			break
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("%d of %d pods up after 5m", len(ips), nPods)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(settle)
	kSum0, kCount0, err := kubeletProbes(node, ns.Name)
	if err != nil {
		return result{}, err
	}
	hSum0, hCount0 := hbChecks(ips, setup)
	p0, a0, err := node.CPUSeconds()
	if err != nil {
		return result{}, err
	}
	time.Sleep(window)
	p1, a1, err := node.CPUSeconds()
	if err != nil {
		return result{}, err
	}
	kSum1, kCount1, err := kubeletProbes(node, ns.Name)
	if err != nil {
		return result{}, err
	}
	hSum1, hCount1 := hbChecks(ips, setup)
	r := result{name: setup, pods: p1 - p0, agents: a1 - a0}
	switch setup {
	case "kubelet":
		r.probes = kCount1 - kCount0
		if r.probes > 0 {
			r.latency = (kSum1 - kSum0) / r.probes
		}
	case "healthbridge":
		r.probes = hCount1 - hCount0
		if r.probes > 0 {
			r.latency = (hSum1 - hSum0) / r.probes
		}
	}
	return r, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// kubeletProbes sums the kubelet's exec readiness probe durations and
// counts in namespace ns (prober_probe_duration_seconds).
func kubeletProbes(node *kubetest.Node, ns string) (sum, count float64, err error) {
	body, err := node.ProbeMetrics()
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(body, "\n") {
		if !strings.Contains(line, `namespace="`+ns+`"`) || !strings.Contains(line, `probe_type="Readiness"`) {
			continue
		}
		v := lastField(line)
		switch {
		case strings.HasPrefix(line, "prober_probe_duration_seconds_sum{"):
			sum += v
		case strings.HasPrefix(line, "prober_probe_duration_seconds_count{"):
			count += v
		}
	}
	return sum, count, nil
}

// hbChecks sums healthbridge's exec check durations and counts over the
// sidecars at ips.
func hbChecks(ips []string, setup string) (sum, count float64) {
	if setup != "healthbridge" {
		return 0, 0
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, ip := range ips {
		resp, err := client.Get("http://" + ip + ":8642/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(line, "healthbridge_check_duration_seconds_sum{"):
				sum += lastField(line)
			case strings.HasPrefix(line, "healthbridge_check_duration_seconds_count{"):
				count += lastField(line)
			}
		}
	}
	return sum, count
}

func lastField(line string) float64 {
	v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
	return v
}

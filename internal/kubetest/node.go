package kubetest

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/healthbridge/healthbridge/internal/proc"
)

// The node's fixed host resources. The kubelet hard-codes some host paths
// (its device-plugin socket), so there is one node per machine: StartNode
// holds NodeLock while the node runs.
const (
	// NodeLock serialises nodes on this machine (several test processes).
	NodeLock = "/run/healthbridge-kubetest-node.lock"
	// nodeRecord is what a running node created, for a later start to
	// remove when a test process died before Stop.
	nodeRecord = "/run/healthbridge-kubetest-node.json"
	// Bridge is the node's Linux bridge, with no uplink: pods reach only
	// this machine (the node IP) and each other. BridgeHost is the host's
	// macvlan leg on it, holding the node IP (macvlan children cannot talk
	// to their parent's own address).
	Bridge     = "hbnode0"
	BridgeHost = "hbnode0h"
	// PodSubnet is the bridge's /24: .1 is the node IP, also the ClusterIP
	// of the "kubernetes" Service (the first of ServiceCIDR), forwarded to
	// the API server on 127.0.0.1; Services get .2-.30; pods .32 and up.
	PodSubnet   = "10.213.78.0/24"
	NodeIP      = "10.213.78.1"
	ServiceCIDR = "10.213.78.0/27"
	// NodeName is the Node object's name.
	NodeName = "hb-node"
	// PauseImage is the pod sandbox image, built FROM scratch.
	PauseImage = "healthbridge-kubetest.local/pause:1"
	// Snapshotter is containerd's: native (plain copies) works on any
	// file system, where Docker here runs on fuse-overlayfs.
	Snapshotter = "native"
)

// hostDirs are paths the kubelet, libcni and containerd's CRI create
// outside the node's directory: the kubelet's container log symlinks, its
// hard-coded device-plugin directory, libcni's result cache, the CRI's
// netns mounts. Those that did not exist before the node are removed when
// they are empty again.
var hostDirs = []string{"/var/log/containers", "/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/var/lib/cni/results", "/var/lib/cni", "/run/netns"}

// UnavailableError says the machine cannot run a node (no root, no
// containerd, ...): tests skip on it, or fail under CI=1.
type UnavailableError struct{ Reason string }

func (e *UnavailableError) Error() string { return "no Kubernetes node here: " + e.Reason }

// Node is a real single Kubernetes node on this machine: its own etcd and
// kube-apiserver (the embedded Env), a containerd instance of its own with
// the CRI plugin and Debian's runc, pods on a bridge with no uplink
// (macvlan legs, host-local IPAM, no masquerade, no default route), the
// kubelet, kube-controller-manager and kube-scheduler. Nothing can be
// pulled: images come from LoadImage, and pods use imagePullPolicy Never
// or IfNotPresent. There is no kube-proxy and no portmap plugin: Service
// ClusterIPs, NodePorts and hostPorts are not mapped (the host's iptables
// stay untouched); the "kubernetes" Service alone is forwarded.
//
// Settings and their reasons: cgroup v1 needs failCgroupV1: false in
// kubelet >= 1.35; containerd 1.6 has no RuntimeConfig RPC, so the
// kubelet's cgroupDriver (cgroupfs) comes from its config; a root without
// CAP_SYS_RESOURCE cannot lower oom_score_adj, so containerd clamps it
// (restrict_oom_score_adj); Docker's iptables FORWARD policy drops bridged
// pod-to-pod traffic, which macvlan legs never meet.
type Node struct {
	*Env
	// Dir holds the node's state: containerd, kubelet, logs.
	Dir string
	// Socket is containerd's CRI socket.
	Socket string
	// PodLogDir is the kubelet's podLogsDir: NS_POD_UID/CONTAINER/N.log.
	PodLogDir string
	// KubeletPort is the kubelet's HTTPS port on 127.0.0.1 (a self-signed
	// certificate; the Admin token is authorised), serving /metrics/probes.
	KubeletPort int

	rec   hostRecord
	netns []string // the sandboxes' network namespaces Stop saw
	// left is what Stop found left behind, checked before it let another
	// node start (the bridge, cgroup and record names are shared).
	left    []string
	checked bool
	lock    *os.File
	procs   []*exec.Cmd
	fwd     net.Listener
	fwdWG   sync.WaitGroup
	stopped bool
}

// hostRecord is what a node created on the host, saved at nodeRecord.
type hostRecord struct {
	Dir        string
	Interfaces []string
	CgroupRoot string
	// SystemCgroup holds the kubelet, containerd and the shims, for
	// CPUSeconds.
	SystemCgroup string
	CreatedDirs  []string
	// Pids of the processes started, with the executable each runs (a
	// recycled pid is never signalled).
	Pids map[int]string
}

// StartNode starts a node in dir (which it creates and, on Stop,
// removes). It first removes what a node whose test process died left
// behind. log receives progress lines. An *UnavailableError says the
// machine cannot run one.
func StartNode(dir string, log func(string)) (*Node, error) {
	if err := nodePrerequisites(); err != nil {
		return nil, err
	}
	kubelet, kcm, sched, err := NodeBinaries(log)
	if err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(NodeLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, err
	}
	if w := time.Since(t0); w > time.Second {
		log(fmt.Sprintf("waited %v for another test process's node", w.Round(time.Second)))
	}
	if b, err := os.ReadFile(nodeRecord); err == nil {
		var old hostRecord
		if json.Unmarshal(b, &old) == nil {
			log("removing what an earlier node left behind in " + old.Dir)
			cleanup(old, true, log)
		}
		os.Remove(nodeRecord)
	}
	for _, ifc := range []string{Bridge, BridgeHost} {
		if _, err := net.InterfaceByName(ifc); err == nil {
			lock.Close()
			return nil, fmt.Errorf("interface %s exists and no node of ours recorded it: remove it (ip link del %s)", ifc, ifc)
		}
	}
	n := &Node{Dir: dir, Socket: filepath.Join(dir, "containerd", "containerd.sock"), PodLogDir: filepath.Join(dir, "pod-logs"), lock: lock}
	n.rec = hostRecord{Dir: dir, CgroupRoot: "/healthbridge-kubetest." + NodeName, SystemCgroup: "/healthbridge-kubetest." + NodeName + "-system", Pids: map[int]string{}}
	if err := n.start(kubelet, kcm, sched, log); err != nil {
		n.Stop()
		return nil, err
	}
	log(fmt.Sprintf("node %s Ready in %v (kubelet %s, containerd, CNI macvlan on %s, node IP %s)", NodeName, time.Since(t0).Round(100*time.Millisecond), Version, Bridge, NodeIP))
	return n, nil
}

func nodePrerequisites() error {
	if os.Geteuid() != 0 {
		return &UnavailableError{"not root (containerd, the kubelet, a bridge and cgroups need it)"}
	}
	for _, c := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "docker"} {
		if _, err := exec.LookPath(c); err != nil {
			return &UnavailableError{c + " not found (apt-get install containerd runc iproute2; Docker builds the images)"}
		}
	}
	for _, p := range []string{"macvlan", "host-local", "loopback"} {
		if _, err := os.Stat("/usr/lib/cni/" + p); err != nil {
			return &UnavailableError{"no /usr/lib/cni/" + p + " (apt-get install containernetworking-plugins)"}
		}
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		return &UnavailableError{"docker info fails: the images are built with Docker"}
	}
	return nil
}

func (n *Node) save() error {
	b, err := json.Marshal(n.rec)
	if err != nil {
		return err
	}
	return os.WriteFile(nodeRecord, b, 0o644)
}

func (n *Node) spawn(name, bin string, args ...string) (*exec.Cmd, error) {
	cmd := command(bin, filepath.Join(n.Dir, name+".log"), args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n.procs = append(n.procs, cmd)
	n.rec.Pids[cmd.Process.Pid] = bin
	if name == "containerd" || name == "kubelet" {
		// Before containerd starts any shim: they inherit the cgroup.
		for _, h := range cgroupMounts() {
			_ = os.WriteFile(filepath.Join(h, n.rec.SystemCgroup, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
		}
	}
	return cmd, n.save()
}

// CPUSeconds returns the CPU time (cpuacct, seconds) used so far by the
// node's pods (every container, and every process exec'd into one) and by
// its node agents: the kubelet, containerd, the shims and the runc
// processes they start, which run in a cgroup of their own. Each CPU
// second is counted once.
func (n *Node) CPUSeconds() (pods, agents float64, err error) {
	var h string
	for _, m := range cgroupMounts() {
		if _, err := os.Stat(filepath.Join(m, "cpuacct.usage")); err == nil {
			h = m
			break
		}
	}
	if h == "" {
		return 0, 0, errors.New("no cgroup v1 cpuacct hierarchy")
	}
	read := func(cg string) (float64, error) {
		b, err := os.ReadFile(filepath.Join(h, cg, "cpuacct.usage"))
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		return v / 1e9, err
	}
	if pods, err = read(n.rec.CgroupRoot); err != nil {
		return 0, 0, err
	}
	agents, err = read(n.rec.SystemCgroup)
	return pods, agents, err
}

func (n *Node) start(kubelet, kcm, sched string, log func(string)) error {
	for _, d := range hostDirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			n.rec.CreatedDirs = append(n.rec.CreatedDirs, d)
		}
	}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return err
	}
	if err := n.save(); err != nil {
		return err
	}
	env, err := StartWith(filepath.Join(n.Dir, "apiserver"), Options{ServiceCIDR: ServiceCIDR, ServingIPs: []net.IP{net.ParseIP(NodeIP)}}, log)
	if err != nil {
		return err
	}
	n.Env = env
	if err := n.network(); err != nil {
		return err
	}
	if err := n.cgroups(); err != nil {
		return err
	}
	if err := n.configs(); err != nil {
		return err
	}
	containerd, err := n.spawn("containerd", mustLook("containerd"), "--config", filepath.Join(n.Dir, "containerd", "config.toml"), "--log-level", "info")
	if err != nil {
		return err
	}
	if err := waitFor(readyTimeout, containerd, "containerd's socket", func() bool {
		return exec.Command("ctr", "--address", n.Socket, "version").Run() == nil
	}); err != nil {
		return err
	}
	pause, err := pauseImage(log)
	if err != nil {
		return err
	}
	if err := n.importTar(pause); err != nil {
		return err
	}
	if err := n.forward(); err != nil {
		return err
	}
	k, err := n.spawn("kubelet", kubelet, "--config", filepath.Join(n.Dir, "kubelet", "config.yaml"),
		"--kubeconfig", filepath.Join(n.Dir, "kubelet", "kubeconfig"),
		"--root-dir", filepath.Join(n.Dir, "kubelet", "root"), "--cert-dir", filepath.Join(n.Dir, "kubelet", "pki"),
		"--hostname-override", NodeName, "--node-ip", NodeIP, "--v=2")
	if err != nil {
		return err
	}
	c, err := n.Client(Admin)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := waitFor(readyTimeout, k, "Node "+NodeName+" Ready", func() bool {
		node, err := c.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue
			}
		}
		return false
	}); err != nil {
		return err
	}
	pki := filepath.Join(n.Env.Dir, "pki")
	m, err := n.spawn("kube-controller-manager", kcm, "--kubeconfig", filepath.Join(n.Dir, "kubelet", "kubeconfig"),
		"--secure-port", "0", "--leader-elect=false", "--controllers", "*",
		"--root-ca-file", n.CAFile, "--service-account-private-key-file", filepath.Join(pki, "sa.key"),
		"--use-service-account-credentials=false", "--flex-volume-plugin-dir", filepath.Join(n.Dir, "kcm-volume-plugins"), "--v=1")
	if err != nil {
		return err
	}
	// The service-account controller creating default/default shows the
	// controllers run.
	if err := waitFor(readyTimeout, m, "kube-controller-manager's default ServiceAccount", func() bool {
		_, err := c.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return err
	}
	// The scheduler: Deployments' and DaemonSets' pods name no node.
	s, err := n.spawn("kube-scheduler", sched, "--kubeconfig", filepath.Join(n.Dir, "kubelet", "kubeconfig"),
		"--leader-elect=false", "--secure-port", "0", "--v=1")
	if err != nil {
		return err
	}
	// A pod that names no node, bound by the scheduler, shows it runs.
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "scheduler-check"}, Spec: corev1.PodSpec{
		TerminationGracePeriodSeconds: new(int64),
		Containers:                    []corev1.Container{{Name: "pause", Image: PauseImage, ImagePullPolicy: corev1.PullNever}},
	}}
	if _, err := c.CoreV1().Pods("default").Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := waitFor(readyTimeout, s, "kube-scheduler binding a pod", func() bool {
		p, err := c.CoreV1().Pods("default").Get(ctx, probe.Name, metav1.GetOptions{})
		return err == nil && p.Spec.NodeName == NodeName
	}); err != nil {
		return err
	}
	zero := int64(0)
	if err := c.CoreV1().Pods("default").Delete(ctx, probe.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		return err
	}
	return waitFor(readyTimeout, nil, "the scheduler's check pod gone", func() bool {
		_, err := c.CoreV1().Pods("default").Get(ctx, probe.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

func mustLook(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return name
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// waitFor polls ok every 200ms until it holds, cmd exits or limit passes.
func waitFor(limit time.Duration, cmd *exec.Cmd, what string, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ok() {
			return nil
		}
		if cmd != nil && !proc.Running(cmd.Process.Pid) {
			return fmt.Errorf("waiting for %s: %s exited (log in its directory)", what, filepath.Base(cmd.Path))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v", what, limit)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// network creates the bridge (no uplink) and the host's macvlan leg on it
// with the node IP.
func (n *Node) network() error {
	if out, _ := exec.Command("ip", "-4", "route", "show", PodSubnet).Output(); len(strings.TrimSpace(string(out))) > 0 {
		return fmt.Errorf("%s is already routed on this machine", PodSubnet)
	}
	if err := ip("link", "add", Bridge, "type", "bridge"); err != nil {
		return err
	}
	n.rec.Interfaces = append(n.rec.Interfaces, Bridge)
	if err := n.save(); err != nil {
		return err
	}
	if err := ip("link", "set", Bridge, "up"); err != nil {
		return err
	}
	if err := ip("link", "add", BridgeHost, "link", Bridge, "type", "macvlan", "mode", "bridge"); err != nil {
		return err
	}
	n.rec.Interfaces = append(n.rec.Interfaces, BridgeHost)
	if err := n.save(); err != nil {
		return err
	}
	if err := ip("addr", "replace", NodeIP+"/24", "dev", BridgeHost); err != nil {
		return err
	}
	return ip("link", "set", BridgeHost, "up")
}

// cgroupMounts lists the mount points of every cgroup (v1) and cgroup2
// hierarchy.
func cgroupMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i := 6; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				if fields[i+1] == "cgroup" || fields[i+1] == "cgroup2" {
					out = append(out, fields[4])
				}
				break
			}
		}
	}
	return out
}

// cgroups creates the kubelet's cgroupRoot in every hierarchy (the kubelet
// validates it exists); a root of its own keeps cleanup away from any other
// kubelet's /kubepods.
func (n *Node) cgroups() error {
	for _, h := range cgroupMounts() {
		for _, cg := range []string{n.rec.CgroupRoot, n.rec.SystemCgroup} {
			d := filepath.Join(h, cg)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if b, err := os.ReadFile(filepath.Join(d, f)); err == nil && strings.TrimSpace(string(b)) == "" {
					parent, _ := os.ReadFile(filepath.Join(h, f))
					_ = os.WriteFile(filepath.Join(d, f), parent, 0o644)
				}
			}
		}
	}
	return nil
}

func (n *Node) configs() error {
	d := n.Dir
	for _, sub := range []string{"containerd", "cni/net.d", "cni/ipam", "kubelet/root", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	containerd := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.overlayfs"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = %[7]q
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[8]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[9]q
`, filepath.Join(d, "containerd/root"), filepath.Join(d, "containerd/state"), n.Socket, n.Socket+".ttrpc",
		filepath.Join(d, "containerd/opt"), PauseImage, Snapshotter, filepath.Join(d, "runc"), filepath.Join(d, "cni/net.d"))
	prefix := strings.TrimSuffix(NodeIP, ".1")
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "hb-node",
  "plugins": [
    {"type": "macvlan", "master": %q, "mode": "bridge",
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "rangeStart": "%s.32", "gateway": %q}]], "dataDir": %q}}
  ]
}
`, Bridge, PodSubnet, prefix, NodeIP, filepath.Join(d, "cni/ipam"))
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: node
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: node
  context: {cluster: node, user: admin}
current-context: node
`, n.Server, n.CAFile, n.Token(Admin))
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	n.KubeletPort = ports[0]
	kubelet := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %s
failSwapOn: false
readOnlyPort: 0
address: 127.0.0.1
port: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
podLogsDir: %s
volumePluginDir: %s
makeIPTablesUtilChains: false
resolvConf: ""
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
authorization:
  mode: Webhook
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# a pod's mounted ConfigMap follows an edit within about 10 s (default 1m)
syncFrequency: 10s
`, n.Socket, n.rec.CgroupRoot, ports[0], ports[1], n.PodLogDir, filepath.Join(d, "kubelet/volume-plugins"))
	for name, body := range map[string]string{
		"containerd/config.toml":        containerd,
		"cni/net.d/10-hb-node.conflist": cni,
		"kubelet/kubeconfig":            kubeconfig,
		"kubelet/config.yaml":           kubelet,
	} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// forward makes the "kubernetes" Service's ClusterIP (the node IP, port
// 443) reach the API server on loopback, as kube-proxy would: pods use
// in-cluster config unchanged.
func (n *Node) forward() error {
	l, err := net.Listen("tcp", net.JoinHostPort(NodeIP, "443"))
	if err != nil {
		return err
	}
	n.fwd = l
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Port()))
	n.fwdWG.Add(1)
	go func() {
		defer n.fwdWG.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer s.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return nil
}

const pauseSource = `// pause: a pod sandbox's process. It blocks until SIGTERM or SIGINT and exits 0.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`

var pauseMu sync.Mutex

// pauseImage builds the sandbox image (a static Go program FROM scratch)
// once into the cache, as a `docker save` archive, and returns its path.
// Docker's own image store is left as it was.
func pauseImage(log func(string)) (string, error) {
	pauseMu.Lock()
	defer pauseMu.Unlock()
	tar := filepath.Join(CacheDir(), "pause-1.tar")
	if _, err := os.Stat(tar); err == nil {
		return tar, nil
	}
	src, err := os.MkdirTemp("", "hb-pause")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	files := map[string]string{
		"go.mod":     "module pause\n\ngo 1.24\n",
		"main.go":    pauseSource,
		"Dockerfile": "FROM scratch\nCOPY pause /pause\nENTRYPOINT [\"/pause\"]\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "pause", ".")
	build.Dir, build.Env = src, append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building pause: %v: %s", err, out)
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", PauseImage, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker build pause: %v: %s", err, out)
	}
	defer exec.Command("docker", "rmi", PauseImage).Run() //nolint:errcheck
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("docker", "save", "-o", tar+".tmp", PauseImage).CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker save pause: %v: %s", err, out)
	}
	log("built the pause image into " + tar)
	return tar, os.Rename(tar+".tmp", tar)
}

func (n *Node) ctr(stdin io.Reader, args ...string) error {
	cmd := exec.Command("ctr", append([]string{"--address", n.Socket, "-n", "k8s.io"}, args...)...)
	cmd.Stdin = stdin
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *Node) importTar(path string) error {
	return n.ctr(nil, "images", "import", "--snapshotter", Snapshotter, path)
}

// LoadImage copies images from the Docker engine into the node's
// containerd (`docker save | ctr images import`), under the names Docker
// has for them (healthbridge:0.1.0 is docker.io/library/healthbridge:0.1.0,
// as the kubelet normalises it).
func (n *Node) LoadImage(refs ...string) error {
	for _, ref := range refs {
		save := exec.Command("docker", "save", ref)
		out, err := save.StdoutPipe()
		if err != nil {
			return err
		}
		var stderr strings.Builder
		save.Stderr = &stderr
		if err := save.Start(); err != nil {
			return err
		}
		ierr := n.ctr(out, "images", "import", "--snapshotter", Snapshotter, "-")
		serr := save.Wait()
		if serr != nil {
			return fmt.Errorf("docker save %s: %v: %s", ref, serr, stderr.String())
		}
		if ierr != nil {
			return ierr
		}
	}
	return nil
}

// LoadImageAs loads the Docker image ref into the node under name, as
// the kubelet resolves name in a pod spec.
func (n *Node) LoadImageAs(ref, name string) error {
	if err := n.LoadImage(ref); err != nil {
		return err
	}
	if err := n.ctr(nil, "images", "tag", "--force", normalizeRef(ref), normalizeRef(name)); err != nil {
		return err
	}
	return n.ctr(nil, "images", "rm", normalizeRef(ref))
}

// normalizeRef is the full name containerd keeps an image under:
// healthbridge:0.1.0 is docker.io/library/healthbridge:0.1.0, a/b:1 is
// docker.io/a/b:1, as Docker and the kubelet resolve them.
func normalizeRef(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	switch {
	case !ok:
		return "docker.io/library/" + ref
	case strings.ContainsAny(first, ".:") || first == "localhost":
		return ref
	default:
		return "docker.io/" + ref
	}
}

// ProbeMetrics returns the kubelet's /metrics/probes (Prometheus text:
// prober_probe_total, prober_probe_duration_seconds, by namespace, pod,
// container, probe_type and result), the kubelet's own account of the
// probes it ran.
func (n *Node) ProbeMetrics() (string, error) {
	req, err := http.NewRequest("GET", fmt.Sprintf("https://127.0.0.1:%d/metrics/probes", n.KubeletPort), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+n.Token(Admin))
	// The kubelet's serving certificate is self-signed.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("kubelet /metrics/probes: %s", resp.Status)
	}
	return string(b), err
}

// PodLog returns the log of the newest run of a container of a pod, as the
// kubelet wrote it (CRI log lines: time, stream, tag, text), read from the
// node's pod-log directory: never through the API server.
func (n *Node) PodLog(ns, pod, container string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(n.PodLogDir, ns+"_"+pod+"_*", container))
	if len(dirs) == 0 {
		return "", fmt.Errorf("no log directory for %s/%s container %s", ns, pod, container)
	}
	var b strings.Builder
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.log"))
		sort.Slice(files, func(i, j int) bool { return logIndex(files[i]) < logIndex(files[j]) })
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "==> %s <==\n%s", filepath.Base(f), data)
		}
	}
	return b.String(), nil
}

func logIndex(f string) int {
	i, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".log"))
	return i
}

// Stop stops everything the node started, by pid, and removes what it
// created: containers and their shims, netns mounts, every mount under
// Dir, the cgroups, the interfaces, the host directories it caused and
// Dir itself; then the API server. Safe to call more than once.
func (n *Node) Stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	if n.fwd != nil {
		n.fwd.Close()
		n.fwdWG.Wait()
	}
	n.netns = sandboxNetns(n.Dir)
	cleanup(n.rec, false, func(string) {})
	for _, c := range n.procs {
		_ = c.Wait()
	}
	if n.Env != nil {
		n.Env.Stop()
	}
	os.RemoveAll(n.Dir)
	os.Remove(nodeRecord)
	n.left, n.checked = n.leftovers(), true
	if n.lock != nil {
		n.lock.Close()
	}
}

// cleanup removes what rec says a node created, and its directory when
// removeDir. It works from a dead test process's record as well as from a
// live node.
func cleanup(rec hostRecord, removeDir bool, log func(string)) {
	// The processes in reverse order of start: controller manager, kubelet,
	// then containers, then containerd.
	pids := make([]int, 0, len(rec.Pids))
	for pid := range rec.Pids {
		pids = append(pids, pid)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(pids)))
	var containerd int
	for _, pid := range pids {
		if strings.HasSuffix(rec.Pids[pid], "/containerd") {
			containerd = pid
			continue
		}
		stopPid(pid, rec.Pids[pid], 15*time.Second)
	}
	runcRoot := filepath.Join(rec.Dir, "runc", "k8s.io")
	netns := sandboxNetns(rec.Dir)
	if ids, err := exec.Command("runc", "--root", runcRoot, "list", "-q").Output(); err == nil {
		for _, id := range strings.Fields(string(ids)) {
			_ = exec.Command("runc", "--root", runcRoot, "delete", "-f", id).Run()
			for _, f := range []string{"kube-node", "hb-node", "cni-loopback"} {
				m, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", f+"-"+id+"-*"))
				for _, p := range m {
					os.Remove(p)
				}
			}
		}
	}
	if containerd != 0 {
		stopPid(containerd, rec.Pids[containerd], 15*time.Second)
	}
	for _, pid := range shims(filepath.Join(rec.Dir, "containerd", "containerd.sock")) {
		stopPid(pid, "", 5*time.Second)
	}
	for _, ns := range netns {
		_ = syscall.Unmount(ns, syscall.MNT_DETACH)
		os.Remove(ns)
	}
	for _, m := range mountsUnder(rec.Dir) {
		if err := syscall.Unmount(m, 0); err != nil {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	for _, cg := range []string{rec.CgroupRoot, rec.SystemCgroup} {
		if strings.HasPrefix(cg, "/healthbridge-kubetest.") {
			for _, h := range cgroupMounts() {
				removeTree(filepath.Join(h, cg))
			}
		}
	}
	for i := len(rec.Interfaces) - 1; i >= 0; i-- {
		_ = exec.Command("ip", "link", "del", rec.Interfaces[i]).Run()
	}
	if links, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, l := range links {
			p := filepath.Join("/var/log/containers", l.Name())
			if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, rec.Dir+"/") {
				os.Remove(p)
			}
		}
	}
	created := map[string]bool{}
	for _, d := range rec.CreatedDirs {
		created[d] = true
	}
	if created["/var/lib/kubelet"] {
		os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
		os.Remove("/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint")
	}
	for _, d := range rec.CreatedDirs {
		os.Remove(d) // only if empty
	}
	if removeDir {
		if err := os.RemoveAll(rec.Dir); err != nil {
			log("removing " + rec.Dir + ": " + err.Error())
		}
	}
}

// stopPid sends SIGTERM to pid, then SIGKILL after limit, if it still runs
// exe ("" for any containerd-shim).
func stopPid(pid int, exe string, limit time.Duration) {
	if !runs(pid, exe) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && proc.Running(pid) {
		time.Sleep(50 * time.Millisecond)
	}
	if proc.Running(pid) && runs(pid, exe) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && proc.Running(pid); i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func runs(pid int, exe string) bool {
	if !proc.Running(pid) {
		return false
	}
	got, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	got = strings.TrimSuffix(got, " (deleted)")
	if exe == "" {
		return strings.Contains(filepath.Base(got), "containerd-shim")
	}
	return got == exe
}

// shims lists the containerd-shim processes that serve the containerd at
// sock (they outlive it).
func shims(sock string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cl), sock) {
			continue
		}
		if runs(pid, "") {
			out = append(out, pid)
		}
	}
	return out
}

// sandboxNetns reads the network namespaces of the running sandboxes from
// their OCI specs in containerd's state directory.
func sandboxNetns(dir string) []string {
	specs, _ := filepath.Glob(filepath.Join(dir, "containerd", "state", "io.containerd.runtime.v2.task", "k8s.io", "*", "config.json"))
	seen := map[string]bool{}
	var out []string
	for _, s := range specs {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		var spec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string }
			}
		}
		if json.Unmarshal(b, &spec) != nil {
			continue
		}
		for _, ns := range spec.Linux.Namespaces {
			// containerd 1.6 names them /var/run/netns/cni-…
			if ns.Type == "network" && (strings.HasPrefix(ns.Path, "/run/netns/") || strings.HasPrefix(ns.Path, "/var/run/netns/")) && !seen[ns.Path] {
				seen[ns.Path] = true
				out = append(out, ns.Path)
			}
		}
	}
	return out
}

// mountsUnder lists mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func removeTree(root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(dirs[i])
	}
}

// Leftovers lists what the node left on this machine after Stop: live
// processes it started or that serve its containerd, mounts under its
// directory, its cgroups, interfaces, netns mounts, log symlinks, host
// directories it created, its directory and record. Empty when Stop
// cleaned up. After Stop it is what Stop saw before it released the node
// lock (another node may have started since, under the same names);
// otherwise it looks now.
func (n *Node) Leftovers() []string {
	if n.checked {
		return n.left
	}
	return n.leftovers()
}

func (n *Node) leftovers() []string {
	var out []string
	for pid, exe := range n.rec.Pids {
		if runs(pid, exe) {
			out = append(out, fmt.Sprintf("process %d (%s)", pid, exe))
		}
	}
	for _, pid := range shims(n.Socket) {
		out = append(out, fmt.Sprintf("containerd-shim %d", pid))
	}
	for _, m := range mountsUnder(n.Dir) {
		out = append(out, "mount "+m)
	}
	for _, h := range cgroupMounts() {
		for _, cg := range []string{n.rec.CgroupRoot, n.rec.SystemCgroup} {
			if _, err := os.Stat(filepath.Join(h, cg)); err == nil {
				out = append(out, "cgroup "+filepath.Join(h, cg))
			}
		}
	}
	for _, ifc := range []string{Bridge, BridgeHost} {
		if _, err := net.InterfaceByName(ifc); err == nil {
			out = append(out, "interface "+ifc)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, ns := range n.netns {
			real := strings.TrimPrefix(ns, "/var")
			if strings.Contains(string(b), " "+real+" ") {
				out = append(out, "netns mount "+real)
			}
		}
	}
	if links, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, l := range links {
			if t, err := os.Readlink(filepath.Join("/var/log/containers", l.Name())); err == nil && strings.HasPrefix(t, n.Dir+"/") {
				out = append(out, "log symlink "+l.Name())
			}
		}
	}
	for _, d := range n.rec.CreatedDirs {
		if _, err := os.Stat(d); err == nil {
			out = append(out, "host directory "+d)
		}
	}
	for _, p := range []string{n.Dir, nodeRecord} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Package kubetest runs a real etcd and kube-apiserver on loopback for
// healthbridge's integration tests, from a clone alone: both are built from
// the Go module proxy with the machine's go, once, into a cache (5-10
// minutes and about 3 GB of Go caches cold on 2 cores; seconds when cached;
// the API server needs about 300 MB of memory), then started on free ports
// with generated certificates, static bearer tokens and an audit log.
//
// An Env alone has no kubelet and no controller manager: tests write pod
// status through the status subresource, create the "default"
// ServiceAccount themselves, and use a fresh namespace per test (a deleted
// namespace stays Terminating without the namespace controller).
//
// StartNode adds a real node: kubelet and kube-controller-manager, built
// the same way, beside a containerd instance of its own with the CRI
// plugin and pods on a bridge with no uplink (see Node).
package kubetest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Version is the Kubernetes release whose kube-apiserver is built. Its
// staging modules (k8s.io/api, k8s.io/client-go, …) are v0.<minor>.<patch>,
// the versions healthbridge's go.mod pins.
const Version = "v1.36.3"

// EnvCache overrides the binary cache directory.
const EnvCache = "HEALTHBRIDGE_KUBE_CACHE"

// CacheDir is where built binaries are kept: $HEALTHBRIDGE_KUBE_CACHE, else
// $XDG_CACHE_HOME/healthbridge-kube, else ~/.cache/healthbridge-kube.
func CacheDir() string {
	if d := os.Getenv(EnvCache); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "healthbridge-kube")
}

// Binaries returns the paths of kube-apiserver and etcd, building them
// first if the cache lacks them. Concurrent callers (several test
// processes) serialise on a lock file. log receives progress lines.
func Binaries(log func(string)) (kubeAPIServer, etcd string, err error) {
	paths, err := binaries(log, "kube-apiserver", "etcd")
	if err != nil {
		return "", "", err
	}
	return paths[0], paths[1], nil
}

// NodeBinaries returns the paths of kubelet, kube-controller-manager and
// kube-scheduler (Version), building them first if the cache lacks them:
// minutes on 2 cores even with the Go caches the API server's build left;
// about 230 MB of binaries. Concurrent callers serialise on the cache's
// lock file.
func NodeBinaries(log func(string)) (kubelet, controllerManager, scheduler string, err error) {
	paths, err := binaries(log, "kubelet", "kube-controller-manager", "kube-scheduler")
	if err != nil {
		return "", "", "", err
	}
	return paths[0], paths[1], paths[2], nil
}

// tools maps each binary the cache can hold to its package.
var tools = map[string]string{
	"kube-apiserver":          "k8s.io/kubernetes/cmd/kube-apiserver",
	"kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
	"kube-scheduler":          "k8s.io/kubernetes/cmd/kube-scheduler",
	"kubelet":                 "k8s.io/kubernetes/cmd/kubelet",
	"etcd":                    "go.etcd.io/etcd/server/v3",
}

func binaries(log func(string), names ...string) ([]string, error) {
	root := filepath.Join(CacheDir(), Version)
	bin := filepath.Join(root, "bin")
	paths := make([]string, len(names))
	missing := func() []string {
		var m []string
		for i, n := range names {
			paths[i] = filepath.Join(bin, n)
			if !exists(paths[i]) {
				m = append(m, n)
			}
		}
		return m
	}
	if len(missing()) == 0 {
		return paths, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	todo := missing()                                    // another process may have built some meanwhile
	if len(todo) == 0 {
		return paths, nil
	}
	start := time.Now()
	log(fmt.Sprintf("building %s %s into %s (minutes the first time)", strings.Join(todo, ", "), Version, bin))
	if err := build(root, bin, todo); err != nil {
		return nil, err
	}
	log(fmt.Sprintf("built %s in %v", strings.Join(todo, ", "), time.Since(start).Round(time.Second)))
	return paths, nil
}

func exists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

var stagingReplace = regexp.MustCompile(`^\s*(k8s\.io/\S+)\s+=>\s+\./staging/src/`)

// build creates a module that requires k8s.io/kubernetes at Version and
// maps each of its ./staging replaces to the published staging version
// (the module zip has no staging directory, so `go install …@version`
// cannot build it), then builds each of names (keys of tools); etcd is the
// one k8s.io/apiserver pins.
func build(root, bin string, names []string) error {
	src := filepath.Join(root, "build")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = src, env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
		}
		return out, nil
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module healthbridge-kube-build\n"), 0o644); err != nil {
		return err
	}
	out, err := run("mod", "download", "-json", "k8s.io/kubernetes@"+Version)
	if err != nil {
		return err
	}
	var dl struct{ GoMod string }
	if err := json.Unmarshal(out, &dl); err != nil || dl.GoMod == "" {
		return fmt.Errorf("go mod download k8s.io/kubernetes@%s: no go.mod in %q", Version, out)
	}
	upstream, err := os.Open(dl.GoMod)
	if err != nil {
		return err
	}
	defer upstream.Close()
	staging := "v0." + strings.TrimPrefix(Version, "v1.")
	var goLine string
	var replaces []string
	sc := bufio.NewScanner(upstream)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "go ") {
			goLine = line
		}
		if m := stagingReplace.FindStringSubmatch(line); m != nil {
			replaces = append(replaces, fmt.Sprintf("\t%s => %s %s", m[1], m[1], staging))
		}
	}
	if goLine == "" || len(replaces) == 0 {
		return fmt.Errorf("unexpected go.mod of k8s.io/kubernetes@%s", Version)
	}
	var toolLines []string
	for _, n := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"} {
		toolLines = append(toolLines, "\t"+tools[n])
	}
	mod := fmt.Sprintf("module healthbridge-kube-build\n\n%s\n\ntool (\n%s\n)\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n%s\n)\n",
		goLine, strings.Join(toolLines, "\n"), Version, strings.Join(replaces, "\n"))
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(mod), 0o644); err != nil {
		return err
	}
	if _, err := run("mod", "tidy"); err != nil {
		return err
	}
	minor := strings.SplitN(strings.TrimPrefix(Version, "v1."), ".", 2)[0]
	var ld []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld = append(ld, "-X", pkg+".gitVersion="+Version, "-X", pkg+".gitMajor=1", "-X", pkg+".gitMinor="+minor, "-X", pkg+".gitTreeState=clean")
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	for _, n := range names {
		flags := "-s -w"
		if n != "etcd" {
			flags += " " + strings.Join(ld, " ")
		}
		tmp := filepath.Join(bin, "."+n+".tmp")
		if _, err := run("build", "-ldflags", flags, "-o", tmp, tools[n]); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(bin, n)); err != nil {
			return err
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

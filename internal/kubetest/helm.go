package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// HelmVersion is the Helm the chart is tested with, built from the Go
// module proxy as the Kubernetes binaries are.
const HelmVersion = "v4.3.2"

// Helm returns the path of the helm binary, building it first (`go
// install helm.sh/helm/v4/cmd/helm@HelmVersion` into the cache) if the
// cache lacks it. Concurrent callers serialise on a lock file; log receives
// progress lines.
func Helm(log func(string)) (string, error) {
	root := filepath.Join(CacheDir(), "helm-"+HelmVersion)
	helm := filepath.Join(root, "bin", "helm")
	if exists(helm) {
		return helm, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if exists(helm) {
		return helm, nil
	}
	start := time.Now()
	log(fmt.Sprintf("building helm %s into %s (a few minutes the first time)", HelmVersion, filepath.Dir(helm)))
	cmd := exec.Command("go", "install", "helm.sh/helm/v4/cmd/helm@"+HelmVersion)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Join(root, "bin"), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install helm.sh/helm/v4/cmd/helm@%s: %v\n%s", HelmVersion, err, tail(stderr.String(), 2000))
	}
	log(fmt.Sprintf("built helm in %v", time.Since(start).Round(time.Second)))
	return helm, nil
}

// Command kubebuild builds, or finds in the cache, every Kubernetes binary
// the tests run (etcd, kube-apiserver, kubelet, kube-controller-manager,
// kube-scheduler; internal/kubetest) and the helm of the chart's tests, and
// says how long that took: .ci/run
// runs it first so that the cost of a cold and a warm cache shows on its
// own line.
//
//	go run ./internal/kubetest/kubebuild
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/healthbridge/healthbridge/internal/kubetest"
)

func main() {
	start := time.Now()
	log := func(s string) { fmt.Fprintln(os.Stderr, "kubebuild:", s) }
	if _, _, err := kubetest.Binaries(log); err != nil {
		fmt.Fprintln(os.Stderr, "kubebuild:", err)
		os.Exit(1)
	}
	if _, _, _, err := kubetest.NodeBinaries(log); err != nil {
		fmt.Fprintln(os.Stderr, "kubebuild:", err)
		os.Exit(1)
	}
	if _, err := kubetest.Helm(log); err != nil {
		fmt.Fprintln(os.Stderr, "kubebuild:", err)
		os.Exit(1)
	}
	fmt.Printf("Kubernetes %s binaries and helm %s ready in %v (cache %s)\n", kubetest.Version, kubetest.HelmVersion, time.Since(start).Round(time.Second), kubetest.CacheDir())
}

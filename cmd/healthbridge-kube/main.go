// Command healthbridge-kube is the kubernetesPod kind's watch, run by
// healthbridge as a helper process so that client-go is in memory only in
// pods whose config has a kubernetesPod check (internal/probe/kube). It is
// not meant to be run by hand, but can be:
//
//	healthbridge-kube resolve [--kubeconfig PATH]
//	    finds credentials with client-go's rules and prints
//	    {"namespace": "<the kubeconfig context's namespace>"}; exit 1 and
//	    the reason on standard error when there are none.
//	healthbridge-kube watch --namespace NS --pod NAME [--kubeconfig PATH] [--user-agent UA]
//	    watches the pod and prints its state as one JSON line (kube.Message)
//	    on every change, until standard input reaches end of file or
//	    SIGTERM/SIGINT arrives; exit 0 then, 1 when it cannot start.
//
// Exit 2 is a usage error.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/healthbridge/healthbridge/internal/idlegc"
	"github.com/healthbridge/healthbridge/internal/probe/kube/helper"
)

func main() {
	_, _ = idlegc.SetMemoryLimit() // GOMEMLIMIT from the container's limit; no limit to read changes nothing
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := helper.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, true)
	stop()
	os.Exit(code)
}

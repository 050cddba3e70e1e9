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
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/idlegc"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kube"
	"github.com/healthbridge/healthbridge/internal/probe/kube/watch"
)

func main() {
	idlegc.SetGCPercent() // the same memory policy as healthbridge
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: healthbridge-kube resolve|watch|version [flags]")
		return 2
	}
	fs := pflag.NewFlagSet("healthbridge-kube "+args[0], pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	parse := func() bool {
		if err := fs.Parse(args[1:]); err != nil {
			fmt.Fprintf(stderr, "healthbridge-kube %s: %v\n", args[0], err)
			return false
		}
		return true
	}
	var o watch.Options
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig path (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account)")
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, "healthbridge-kube", probe.BuildInfo())
		return 0
	case "resolve":
		if !parse() {
			return 2
		}
		_, ns, err := watch.RESTConfig(o.Kubeconfig)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := json.NewEncoder(stdout).Encode(kube.Resolved{Namespace: ns}); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	case "watch":
		fs.StringVar(&o.Namespace, "namespace", "", "the pod's namespace (required)")
		fs.StringVar(&o.Pod, "pod", "", "the pod's name (required)")
		fs.StringVar(&o.UserAgent, "user-agent", "", "User-Agent of the requests")
		if !parse() {
			return 2
		}
		for name, v := range map[string]string{"--namespace": o.Namespace, "--pod": o.Pod} {
			if v == "" {
				fmt.Fprintf(stderr, "healthbridge-kube watch: %s is required\n", name)
				return 2
			}
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go idlegc.Run(ctx, nil) // a watch is idle between changes
		// Standard input is healthbridge's pipe: its end of file means
		// healthbridge has stopped (or died) and the watch must too.
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
		enc := json.NewEncoder(stdout)
		err := watch.Run(ctx, o, func(m kube.Message) {
			if enc.Encode(m) != nil {
				cancel() // healthbridge is gone
			}
		})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "healthbridge-kube: unknown command %q (resolve, watch, version)\n", args[0])
		return 2
	}
}

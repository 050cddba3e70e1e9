// Package helper is healthbridge-kube's body: the kubernetesPod kind's
// watch (client-go), which healthbridge runs as a helper process so that
// client-go is in memory only in pods whose config has a kubernetesPod
// check (see internal/probe/kube and cmd/healthbridge-kube).
package helper

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/idlegc"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kube"
	"github.com/healthbridge/healthbridge/internal/probe/kube/watch"
)

// Run runs one healthbridge-kube command (args[0]: resolve, watch or
// version; see cmd/healthbridge-kube) until it is done or ctx is, and
// returns its exit code: 0, 1 when it cannot work, 2 for a usage error.
// idle runs the idle collector (internal/idlegc) during a watch, as a
// process of its own does.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, idle bool) int {
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
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if idle {
			go idlegc.Run(ctx, nil) // a watch is idle between changes
		}
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

// Command healthbridge-probe is `healthbridge probe` alone, for the
// HEALTHCHECK of a scratch image: one probe (or every check of a config
// with --config) run once, exit 0 healthy, 1 unhealthy, 2 usage error, as
// Docker's HEALTHCHECK contract. It is the same code as the sidecar's
// probe subcommand (internal/oneshot over the same probe kinds); built with
// -tags lean it leaves out the grpc and kubernetesPod kinds and is a few
// MiB.
//
//	healthbridge-probe http://127.0.0.1:8080/healthz
//	healthbridge-probe tcp 127.0.0.1:5432
//	healthbridge-probe check --config /etc/healthbridge.yaml
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/healthbridge/healthbridge/internal/oneshot"
	"github.com/healthbridge/healthbridge/internal/probe"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cli := oneshot.ProbeOnly
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return cli.Check(args[1:], stdout, stderr)
		case "healthcheck":
			return cli.Healthcheck(args[1:], stdout, stderr)
		case "wait":
			return cli.Wait(args[1:], stdout, stderr)
		case "probe": // `healthbridge-probe probe tcp …` reads as the full binary's
			args = args[1:]
		case "version", "--version":
			fmt.Fprintln(stdout, "healthbridge-probe", probe.BuildInfo())
			return oneshot.ExitHealthy
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, cli.ProbeUsage())
			fmt.Fprintln(stdout, "\nAlso:\n  healthbridge-probe check --config FILE [--role R] [-v]        every check of FILE, once\n"+
				"  healthbridge-probe healthcheck [--config FILE] [--endpoint E]   ask the healthbridge serving FILE for /livez\n"+
				"  healthbridge-probe wait [flags] TARGET... [-- CMD ...]         wait until every target passes, then exec CMD\n"+
				"  healthbridge-probe version")
			return oneshot.ExitHealthy
		}
	}
	return cli.Probe(args, stdout, stderr)
}

// Command healthbridge-probe is `healthbridge probe` alone, for the
// HEALTHCHECK of a scratch image: one probe (or every check of a config
// with --config) run once, exit 0 healthy, 1 unhealthy, 2 usage error, as
// Docker's HEALTHCHECK contract. It is the same code as the sidecar's
// probe subcommand (internal/oneshot over the same probe kinds); built with
// -tags lean it leaves out the grpc and kubernetesPod kinds and is a few
// MiB (deploy/build-image.sh --probe, README "Images and binaries").
//
//	healthbridge-probe http://127.0.0.1:8080/healthz
//	healthbridge-probe tcp 127.0.0.1:5432
//	healthbridge-probe check --config /etc/healthbridge.yaml
package main

import (
	"fmt"
	"os"

	"github.com/healthbridge/healthbridge/internal/oneshot"
	"github.com/healthbridge/healthbridge/internal/probe"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "check":
			os.Exit(oneshot.Check(args[1:], os.Stdout, os.Stderr))
		case "probe": // `healthbridge-probe probe tcp …` reads as the full binary's
			args = args[1:]
		case "version", "--version":
			fmt.Println("healthbridge-probe", probe.BuildInfo())
			os.Exit(0)
		}
	}
	os.Exit(oneshot.Probe(args, os.Stdout, os.Stderr))
}

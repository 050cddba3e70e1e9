// Command healthbridge-healthcheck is the HEALTHCHECK of healthbridge's
// images: `healthbridge healthcheck` in a program of about 1.5 MB.
//
//	healthbridge-healthcheck [--config FILE] [--endpoint livez|readyz|startupz|healthz] [--timeout 5s]
//	healthbridge-healthcheck version
//
// It reads the listen address of FILE (default $HEALTHBRIDGE_CONFIG) and
// GETs /ENDPOINT (default livez) there, on 127.0.0.1 when the server
// listens on every address. Exit 0 when it answers 200, 1 otherwise, 2 on a
// bad command line or an unreadable file.
//
// Docker runs a HEALTHCHECK as a new process in the container every
// interval, and the container's working set ends up counting the whole
// executable it runs (see package hcfast): this program keeps that cost at
// its own size. Whatever it cannot handle with certainty — a config that is
// not plain block YAML, a host name, -v, --help — it hands to the full
// program, exec'ing `healthbridge healthcheck` (or `healthbridge-probe
// healthcheck`) from its own directory with the same arguments.
package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/healthbridge/healthbridge/internal/hcfast"
)

const prog = "healthbridge-healthcheck"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 1 && (args[0] == "version" || args[0] == "--version") {
		os.Stdout.WriteString(prog + " " + hcfast.BuildInfo() + "\n")
		return 0
	}
	file, endpoint, timeout, ok := parseArgs(args)
	if !ok || file == "" {
		return full(args, "") // the full program says what is wrong (a usage error, no config)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		os.Stderr.WriteString(prog + ": " + err.Error() + "\n")
		return 2
	}
	addr, ok := hcfast.ReadListen(data)
	if !ok {
		return full(args, file)
	}
	return ask(addr, endpoint, timeout)
}

// parseArgs reads --config, --endpoint and --timeout (one or two dashes,
// "=" or a separate value); ok is false for anything else.
func parseArgs(args []string) (file, endpoint string, timeout time.Duration, ok bool) {
	file, endpoint, timeout = os.Getenv("HEALTHBRIDGE_CONFIG"), "livez", 5*time.Second
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-"), "=")
		if !strings.HasPrefix(args[i], "-") {
			return "", "", 0, false
		}
		if !hasValue {
			if i+1 == len(args) {
				return "", "", 0, false
			}
			i++
			value = args[i]
		}
		switch name {
		case "config":
			file = value
		case "endpoint":
			endpoint = strings.Trim(value, "/")
			if endpoint != "livez" && endpoint != "readyz" && endpoint != "startupz" && endpoint != "healthz" {
				return "", "", 0, false
			}
		case "timeout":
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				return "", "", 0, false
			}
			timeout = d
		default:
			return "", "", 0, false
		}
	}
	return file, endpoint, timeout, true
}

func ask(addr netip.AddrPort, endpoint string, timeout time.Duration) int {
	url := "http://" + addr.String() + "/" + endpoint
	code, err := hcfast.Ask(addr, endpoint, timeout)
	switch {
	case err != nil:
		os.Stderr.WriteString("unhealthy: " + url + ": " + err.Error() + "\n")
		return 1
	case code != 200:
		os.Stderr.WriteString("unhealthy: " + url + ": HTTP " + strconv.Itoa(code) + "\n")
		return 1
	}
	return 0
}

// full execs the full program's healthcheck with the same arguments.
func full(args []string, file string) int {
	self, err := os.Executable()
	if err == nil {
		for _, name := range []string{"healthbridge", "healthbridge-probe"} {
			path := filepath.Join(filepath.Dir(self), name)
			if _, err := os.Stat(path); err == nil {
				err = syscall.Exec(path, append([]string{name, "healthcheck"}, args...), os.Environ())
				os.Stderr.WriteString(prog + ": exec " + path + ": " + err.Error() + "\n")
				return 2
			}
		}
	}
	why := "this command line"
	if file != "" {
		why = file + "'s listen address"
	}
	os.Stderr.WriteString(prog + ": " + why + " needs the full program (healthbridge healthcheck), and it is not next to this one\n")
	return 2
}

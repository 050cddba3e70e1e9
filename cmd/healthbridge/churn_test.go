package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

// TestExecChurnUnderLoadHasNoUnknown: hundreds of exec runs under --reap,
// half of them timing out and half leaving orphans for the reaper, while
// another process keeps a core busy. A run whose deadline passes before
// its command could even start is a timeout failure, never "unknown", and
// no run is lost.
func TestExecChurnUnderLoadHasNoUnknown(t *testing.T) {
	if testing.Short() {
		t.Skip("churn runs for 15s")
	}
	// Another process loading a core for the whole run.
	load := exec.Command("sh", "-c", "while :; do :; done")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = load.Process.Kill(); _ = load.Wait() })

	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nchecks:\n")
	for i := range 15 {
		fmt.Fprintf(&b, "  - {name: hang-%d, exec: {command: [sleep, \"30\"]}, timeoutSeconds: 1, periodSeconds: 1}\n", i)
		fmt.Fprintf(&b, "  - {name: orphan-%d, exec: {command: [sh, -c, \"sleep 0.3 & exit 0\"]}, timeoutSeconds: 1, periodSeconds: 1}\n", i)
	}
	p := start(t, "--reap", "--config", writeConfig(t, b.String()))
	time.Sleep(15 * time.Second)
	_, metrics := p.Get(t, "/metrics")

	count := func(result string) (n int) {
		re := regexp.MustCompile(`healthbridge_check_probe_total\{check="[^"]+",kind="exec",result="` + result + `"\} (\d+)`)
		for _, m := range re.FindAllStringSubmatch(metrics, -1) {
			v, _ := strconv.Atoi(m[1])
			n += v
		}
		return n
	}
	unknown, failures, successes := count("unknown"), count("failure"), count("success")
	testutil.Report(t, "exec churn under --reap with a core loaded, 15s: %d runs (%d timed out, %d passed), %d unknown", unknown+failures+successes, failures, successes, unknown)
	if unknown != 0 {
		t.Fatalf("%d runs ended unknown:\n%s", unknown, p.Logs())
	}
	if failures < 60 || successes < 100 {
		t.Fatalf("too little churn to prove anything: %d failures, %d successes", failures, successes)
	}
}

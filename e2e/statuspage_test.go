package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

// chromium returns Debian's chromium, or fails/skips (testutil.Need).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testutil.Need(t, false, "no chromium", "apt-get install chromium")
	return ""
}

// browser starts headless Chromium with a fresh profile and the flags of
// the issue, and returns a chromedp context for one tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 720),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	// The first step starts the browser, which lives as long as the context
	// of that step: the tab's own, not a step's timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// TestStatusPageInChromium: the status page in a real headless Chromium
// shows a check flip from healthy to unhealthy and back without a reload
// (a marker set in the page survives), each within one period plus a
// second of the flip, and shows state in words; a screenshot is saved.
func TestStatusPageInChromium(t *testing.T) {
	testutil.NeedFull(t, "the status page")
	ctx := browser(t)
	flag := filepath.Join(t.TempDir(), "up")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const period = 2 * time.Second
	cfg := filepath.Join(t.TempDir(), "hb.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
exposeOutput: true
checks:
  - name: database
    exec: {command: [sh, -c, 'test -e %s || { echo "database is down"; exit 1; }']}
    periodSeconds: %d
    failureThreshold: 1
  - name: cache
    tcpSocket: {port: 1}
    roles: [readiness]
    periodSeconds: 1
  - name: web
    exec: {command: ["true"]}
    periodSeconds: 1
`, flag, int(period.Seconds()))), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testutil.Start(t, bin(t), "--config", cfg)
	p.WaitFor(t, "/livez/database", func(code int, _ string) bool { return code == 200 })

	// within bounds browser steps; the tab lives in ctx.
	within := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 60*time.Second) }
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v\nhealthbridge: %s", what, err, p.Logs())
		}
	}
	row := chromedp.CSS(`#check-database td.state`)
	c, cancel := within()
	must("load", chromedp.Do(c, chromedp.Navigate(p.Addr+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#check-database td.state[data-state="healthy"]`))))
	_, err := chromedp.Run(c, chromedp.Evaluate[bool](`window.__notReloaded = true`))
	must("mark the page", err)
	state, err := chromedp.Run(c, chromedp.Text(row))
	must("read the state", err)
	cancel()
	if !strings.Contains(state, "✔ healthy") {
		t.Fatalf("database state %q", state)
	}
	// flip waits until the page shows the database in want, without a
	// reload, and returns how long after the change it did.
	flip := func(want string, change func() error) time.Duration {
		t.Helper()
		at := time.Now()
		if err := change(); err != nil {
			t.Fatal(err)
		}
		c, cancel := within()
		defer cancel()
		must("wait for "+want, chromedp.Do(c, chromedp.WaitVisible(chromedp.CSS(`#check-database td.state[data-state="`+want+`"]`))))
		took := time.Since(at)
		kept, err := chromedp.Run(c, chromedp.Evaluate[bool](`window.__notReloaded === true`))
		must("read the mark", err)
		if !kept {
			t.Fatalf("the page reloaded to show %s", want)
		}
		return took
	}
	down := flip("unhealthy", func() error { return os.Remove(flag) })
	c, cancel = within()
	html, err := chromedp.Run(c, chromedp.OuterHTML(chromedp.CSS(`#check-database`)))
	must("read the row", err)
	if !strings.Contains(html, "✘ unhealthy") || !strings.Contains(html, "database is down") || !strings.Contains(html, "exit code 1") {
		t.Fatalf("unhealthy row: %s", html)
	}
	shot, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	must("screenshot", err)
	cancel()
	testutil.Artifact(t, "status-page.png", shot)
	up := flip("healthy", func() error { return os.WriteFile(flag, nil, 0o644) })
	testutil.Report(t, "status page in Chromium shows the flip without a reload: unhealthy %v, healthy again %v after the change (period %v)",
		down.Round(10*time.Millisecond), up.Round(10*time.Millisecond), period)
	// The bound: the check sees the change at its next run (at most a
	// period), the page within a second of that.
	if limit := period + time.Second; down > limit || up > limit {
		t.Errorf("the page took %v and %v to show the changes, over one period plus a second (%v)", down, up, limit)
	}
}

// TestStatusPage1000ChecksInChromium: with 1,000 checks the page still
// loads and renders in Chromium; its size and the time to the last row
// are reported.
func TestStatusPage1000ChecksInChromium(t *testing.T) {
	testutil.NeedFull(t, "the status page")
	ctx := browser(t)
	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nchecks:\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "  - {name: check-%d, tcpSocket: {port: 1}, periodSeconds: 10}\n", i)
	}
	cfg := filepath.Join(t.TempDir(), "hb.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testutil.Start(t, bin(t), "--config", cfg)
	// Every check has run once (first runs are spread over the period).
	p.WaitFor(t, "/healthz?format=json", func(_ int, body string) bool {
		return !strings.Contains(body, `"results":[]`) && !strings.Contains(body, `"results":null`)
	})
	req, _ := http.NewRequest("GET", p.Addr+"/", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	start := time.Now()
	if err := chromedp.Do(c, chromedp.Navigate(p.Addr+"/"), chromedp.WaitVisible(chromedp.CSS(`#check-check-999 td.state`))); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	rows, err := chromedp.Run(c, chromedp.Evaluate[int](`document.querySelectorAll('tbody tr').length`))
	if err != nil || rows != 1000 {
		t.Fatalf("%d rows rendered, %v", rows, err)
	}
	testutil.Report(t, "status page with 1,000 checks: %d bytes (%d KiB), loaded and rendered in Chromium in %v", len(body), len(body)/1024, took.Round(time.Millisecond))
}

package testutil

import (
	"os"
	"testing"
)

// Need stops the test when a real peer it needs (HAProxy, Docker, python3,
// busybox-static) is missing: with $CI set it fails, since .ci/run
// installs every peer and a skipped test must not read as a pass there;
// elsewhere it skips, saying what is missing and how to get it.
func Need(t *testing.T, ok bool, missing, hint string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI=1: .ci/run must provide it; %s)", missing, hint)
	}
	t.Skipf("SKIP: %s (%s)", missing, hint)
}

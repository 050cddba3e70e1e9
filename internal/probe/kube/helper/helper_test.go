package helper

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageErrors: a usage error exits 2 and names what is wrong.
func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "usage: healthbridge-kube"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"watch", "--namespace", "ns"}, "--pod is required"},
		{[]string{"watch", "--pod", "web"}, "--namespace is required"},
		{[]string{"resolve", "--nope"}, "unknown flag: --nope"},
	} {
		var out, errb bytes.Buffer
		if code := Run(context.Background(), tt.args, strings.NewReader(""), &out, &errb, false); code != 2 || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.args, code, errb.String(), tt.want)
		}
	}
}

// TestResolve: the kubeconfig context's namespace is printed as JSON; a
// kubeconfig that cannot be read is exit 1 with client-go's reason.
func TestResolve(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team-a}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"resolve", "--kubeconfig", kc}, strings.NewReader(""), &out, &errb, false); code != 0 || strings.TrimSpace(out.String()) != `{"namespace":"team-a"}` {
		t.Fatalf("resolve: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	missing := filepath.Join(dir, "missing")
	if code := Run(context.Background(), []string{"resolve", "--kubeconfig", missing}, strings.NewReader(""), &out, &errb, false); code != 1 || !strings.Contains(errb.String(), missing) || out.Len() != 0 {
		t.Fatalf("missing kubeconfig: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// TestWatchStopsAtEndOfInput: healthbridge closing the pipe (its end of
// file) stops the watch, exit 0, even while the API server never answers.
func TestWatchStopsAtEndOfInput(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"watch", "--kubeconfig", kc, "--namespace", "ns", "--pod", "web"}, strings.NewReader(""), &out, &errb, false); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

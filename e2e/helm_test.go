package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

const chart = "../deploy/helm/healthbridge"

// helm runs the helm binary built for the tests and returns its stdout,
// or its error with stderr.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := kubetest.Helm(func(s string) { t.Log(s) })
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), &helmError{err: err, stderr: stderr.String()}
	}
	return string(out), nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.stderr }

var yamlDocs = regexp.MustCompile(`(?m)^---\s*$`)

// rendered parses `helm template` output into objects.
func rendered(t *testing.T, out string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range yamlDocs.Split(out, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &o.Object); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if o.Object != nil {
			objs = append(objs, &o)
		}
	}
	return objs
}

// TestHelmChart: the chart lints clean (--strict), its values schema
// refuses a bad kind, and rendered with the defaults (Deployment, reload on)
// and as a DaemonSet with a kubernetesPod check and reload off, every
// object is accepted by a real API server (server-side dry run), the
// rendered healthbridge config validates, RBAC comes exactly with the
// kubernetesPod check, and the checksum/config annotation exactly when
// reload is off.
func TestHelmChart(t *testing.T) {
	testutil.NeedFull(t, "the kubernetesPod kind")
	if out, err := helm(t, "lint", "--strict", chart); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	if _, err := helm(t, "template", "r", chart, "--set", "kind=StatefulSet"); err == nil || !strings.Contains(err.Error(), "kind") {
		t.Fatalf("kind=StatefulSet was rendered: %v", err)
	}
	podValues := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(podValues, []byte(`kind: DaemonSet
reload: {enabled: false}
config:
  shutdownDelaySeconds: 5
  checks:
    - name: pod
      roles: [readiness]
      kubernetesPod: {container: app}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env, c := kube(t)
	ns := kubetest.Namespace(t, c)
	dryRun := dryRunner(t, env)
	for _, tc := range []struct {
		name           string
		args           []string
		workload       string
		rbac, checksum bool
		watchConfig    bool
	}{
		{"defaults", nil, "Deployment", false, false, true},
		{"daemonset-pod-check", []string{"-f", podValues}, "DaemonSet", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "hb", chart, "--namespace", ns}, tc.args...)...)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			kinds := map[string]int{}
			for _, o := range rendered(t, out) {
				gvk := o.GroupVersionKind()
				kinds[gvk.Kind]++
				if _, err := dryRun(ns, o); err != nil {
					t.Fatalf("server-side dry run of %s %s: %v", gvk.Kind, o.GetName(), err)
				}
				switch gvk.Kind {
				case "ConfigMap":
					cfg, _, _ := unstructured.NestedString(o.Object, "data", "healthbridge.yaml")
					f := testutil.WriteFile(t, "healthbridge.yaml", cfg)
					if code, out, errOut := testutil.Run(t, bin(t), "validate", f); code != 0 {
						t.Errorf("the rendered config does not validate: %s%s\n%s", out, errOut, cfg)
					}
					if got := strings.Contains(cfg, "watchConfig: true"); got != tc.watchConfig {
						t.Errorf("watchConfig in the config: %v, want %v:\n%s", got, tc.watchConfig, cfg)
					}
				case "Deployment", "DaemonSet":
					ann, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "annotations")
					if _, got := ann["checksum/config"]; got != tc.checksum {
						t.Errorf("checksum/config annotation: %v, want %v", got, tc.checksum)
					}
					spec, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
					if nonRoot, _, _ := unstructured.NestedBool(spec, "securityContext", "runAsNonRoot"); !nonRoot {
						t.Error("runAsNonRoot is not set")
					}
					cs, _, _ := unstructured.NestedSlice(spec, "containers")
					if ro, _, _ := unstructured.NestedBool(cs[0].(map[string]any), "securityContext", "readOnlyRootFilesystem"); len(cs) != 1 || !ro {
						t.Errorf("containers %v: want healthbridge alone, with a read-only root filesystem", cs)
					}
				}
			}
			if kinds[tc.workload] != 1 || kinds["ConfigMap"] != 1 || kinds["Service"] != 1 || kinds["ServiceAccount"] != 1 {
				t.Errorf("rendered %v, want one %s, ConfigMap, Service and ServiceAccount", kinds, tc.workload)
			}
			if got := kinds["Role"] == 1 && kinds["RoleBinding"] == 1; got != tc.rbac {
				t.Errorf("RBAC rendered: %v, want %v (%v)", got, tc.rbac, kinds)
			}
		})
	}
}

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// TestManifestsServerSideDryRun: every object under deploy/kubernetes is
// accepted by a real API server (server-side dry run: validation, defaulting
// and admission, nothing stored), meets our least-privilege and hardening
// rules, and embeds a healthbridge config that validates.
func TestManifestsServerSideDryRun(t *testing.T) {
	testutil.NeedFull(t, "the kubernetesPod kind")
	env, c := kube(t)
	ns := kubetest.Namespace(t, c)
	rc := env.RESTConfig(kubetest.Admin)
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../deploy/kubernetes/*.yaml")
	if len(files) < 3 {
		t.Fatalf("manifests: %v", files)
	}
	kinds := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var obj unstructured.Unstructured
			if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
				t.Fatalf("%s doc %d: %v", f, i, err)
			}
			if obj.Object == nil {
				continue
			}
			gvk := obj.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s %s: %v", f, gvk, err)
			}
			out, err := dyn.Resource(m.Resource).Namespace(ns).Create(context.Background(), &obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				t.Fatalf("%s: server-side dry run of %s %s: %v", filepath.Base(f), gvk.Kind, obj.GetName(), err)
			}
			kinds[gvk.Kind]++
			checkObject(t, filepath.Base(f), out)
		}
	}
	for _, k := range []string{"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service", "DaemonSet"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in deploy/kubernetes", k)
		}
	}
	// Nothing was stored.
	if l, err := c.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Fatalf("dry run stored objects: %v %v", l, err)
	}
}

func checkObject(t *testing.T, file string, obj *unstructured.Unstructured) {
	t.Helper()
	where := file + ": " + obj.GetKind() + " " + obj.GetName()
	switch obj.GetKind() {
	case "Role":
		rules, _, _ := unstructured.NestedSlice(obj.Object, "rules")
		for _, r := range rules {
			rm := r.(map[string]any)
			res, _, _ := unstructured.NestedStringSlice(rm, "resources")
			verbs, _, _ := unstructured.NestedStringSlice(rm, "verbs")
			if strings.Join(res, ",") != "pods" || strings.Join(verbs, ",") != "get,list,watch" {
				t.Errorf("%s: rule %v is more than get/list/watch on pods", where, rm)
			}
		}
	case "ConfigMap":
		data, _, _ := unstructured.NestedStringMap(obj.Object, "data")
		cfg, ok := data["healthbridge.yaml"]
		if !ok {
			return
		}
		f := testutil.WriteFile(t, "healthbridge.yaml", cfg)
		if code, out, errOut := testutil.Run(t, bin(t), "validate", f); code != 0 {
			t.Errorf("%s: embedded config does not validate: %s%s", where, out, errOut)
		}
	case "Deployment", "DaemonSet":
		spec, _, _ := unstructured.NestedMap(obj.Object, "spec", "template", "spec")
		if nonRoot, _, _ := unstructured.NestedBool(spec, "securityContext", "runAsNonRoot"); !nonRoot {
			t.Errorf("%s: pod securityContext.runAsNonRoot is not true", where)
		}
		containers, _, _ := unstructured.NestedSlice(spec, "containers")
		sawHB := false
		for _, ci := range containers {
			cm := ci.(map[string]any)
			name := cm["name"].(string)
			if ro, _, _ := unstructured.NestedBool(cm, "securityContext", "readOnlyRootFilesystem"); !ro {
				t.Errorf("%s: container %s: readOnlyRootFilesystem is not true", where, name)
			}
			for _, k := range []string{"requests", "limits"} {
				if r, _, _ := unstructured.NestedStringMap(cm, "resources", k); r["cpu"] == "" || r["memory"] == "" {
					t.Errorf("%s: container %s: resources.%s must set cpu and memory", where, name, k)
				}
			}
			if name == "healthbridge" {
				sawHB = true
				if path, _, _ := unstructured.NestedString(cm, "livenessProbe", "httpGet", "path"); path != "/livez" {
					t.Errorf("%s: healthbridge's own liveness probe must be httpGet /livez, got %q", where, path)
				}
				if sa, _, _ := unstructured.NestedString(spec, "serviceAccountName"); sa != "healthbridge" {
					t.Errorf("%s: serviceAccountName %q", where, sa)
				}
			}
		}
		if !sawHB {
			t.Errorf("%s: no healthbridge container", where)
		}
	}
}

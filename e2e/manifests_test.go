package e2e

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/healthbridge/healthbridge/internal/kubetest"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

// TestManifestsServerSideDryRun: deploy/kubernetes, rendered by
// kustomize as `kubectl apply -k` renders it, is accepted object by object
// by a real API server (server-side dry run: validation, defaulting and
// admission, nothing stored); every object lands in the kustomization's
// namespace, every image is the one the kustomization names, pulled only
// if not present, and the objects meet our least-privilege and hardening
// rules and embed a healthbridge config that validates.
func TestManifestsServerSideDryRun(t *testing.T) {
	testutil.NeedFull(t, "the kubernetesPod kind")
	env, c := kube(t)
	dryRun := dryRunner(t, env)
	resmap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "../deploy/kubernetes")
	if err != nil {
		t.Fatalf("kustomize build deploy/kubernetes: %v", err)
	}
	const ns = "healthbridge-example"
	images := map[string]bool{"healthbridge:0.1.0": true, "healthbridge-example/udp-echo:0.1.0": true}
	kinds := map[string]int{}
	for _, res := range resmap.Resources() {
		m, err := res.Map()
		if err != nil {
			t.Fatal(err)
		}
		obj := unstructured.Unstructured{Object: m}
		gvk := obj.GroupVersionKind()
		target := ns
		if gvk.Kind == "Namespace" {
			if obj.GetName() != ns {
				t.Errorf("namespace %q, want %q", obj.GetName(), ns)
			}
			target = ""
		} else {
			if obj.GetNamespace() != ns {
				t.Errorf("%s %s: namespace %q, want %q", gvk.Kind, obj.GetName(), obj.GetNamespace(), ns)
			}
			// The dry run needs the namespace to exist: create it for real.
			kubetest.EnsureNamespace(t, c, ns)
		}
		created, err := dryRun(target, &obj)
		if err != nil {
			t.Fatalf("server-side dry run of %s %s: %v", gvk.Kind, obj.GetName(), err)
		}
		kinds[gvk.Kind]++
		checkObject(t, "kustomize build", created)
		containers, _, _ := unstructured.NestedSlice(created.Object, "spec", "template", "spec", "containers")
		for _, ci := range containers {
			cm := ci.(map[string]any)
			if img := cm["image"].(string); !images[img] || cm["imagePullPolicy"] != "IfNotPresent" {
				t.Errorf("%s %s: container %s: image %q, pull policy %v: want one of the kustomization's images, IfNotPresent", gvk.Kind, obj.GetName(), cm["name"], img, cm["imagePullPolicy"])
			}
		}
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service", "DaemonSet"} {
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
			if _, ok := cm["readinessProbe"]; !ok && cm["name"] != "healthbridge" {
				t.Errorf("%s: the app container %v has no readinessProbe: a kubernetesPod check of it would only say \"started\"", where, cm["name"])
			}
		}
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

// dryRunner returns a function that creates an object on env's API server
// as a server-side dry run (validation, defaulting and admission, nothing
// stored), in namespace ns ("" for a cluster-scoped object), and returns
// what the server would have stored.
func dryRunner(t *testing.T, env *kubetest.Env) func(ns string, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	t.Helper()
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
	return func(ns string, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, err
		}
		opts := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		if ns == "" {
			return dyn.Resource(m.Resource).Create(context.Background(), o, opts)
		}
		return dyn.Resource(m.Resource).Namespace(ns).Create(context.Background(), o, opts)
	}
}

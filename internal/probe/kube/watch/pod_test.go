package watch

import (
	"encoding/json"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"

	"github.com/healthbridge/healthbridge/internal/probe/kube"
)

// TestPodMatchesCoreV1 fills core/v1 Pods at random, sends them through the
// JSON the API server speaks and the watch's own decoder, and checks that
// every field Ready reads arrives in the reduced Pod as it was.
func TestPodMatchesCoreV1(t *testing.T) {
	f := randfill.NewWithSeed(7).NilChance(0.3).NumElements(0, 3).MaxDepth(8).Funcs(
		// Types whose random values the API cannot carry in JSON.
		func(v *intstr.IntOrString, c randfill.Continue) { *v = intstr.FromInt32(c.Int31()) },
		func(v *resource.Quantity, c randfill.Continue) {
			*v = *resource.NewQuantity(c.Int63n(1000), resource.DecimalSI)
		},
		func(v *metav1.Time, c randfill.Continue) { v.Time = metav1.Unix(c.Int63n(1<<32), 0).Rfc3339Copy().Time },
		func(v *runtime.RawExtension, c randfill.Continue) { *v = runtime.RawExtension{} },
		func(v *metav1.FieldsV1, c randfill.Continue) { *v = metav1.FieldsV1{Raw: []byte("{}")} },
	)
	decoder := podCodecs.UniversalDeserializer()
	for i := range 200 {
		var want corev1.Pod
		f.Fill(&want)
		want.APIVersion, want.Kind = "v1", "Pod"
		b, err := json.Marshal(&want)
		if err != nil {
			t.Fatalf("pod %d: marshal: %v", i, err)
		}
		obj, _, err := decoder.Decode(b, nil, nil)
		if err != nil {
			t.Fatalf("pod %d: decode: %v", i, err)
		}
		decoded, ok := obj.(*apiPod)
		if !ok {
			t.Fatalf("pod %d decoded to %T", i, obj)
		}
		got := decoded.reduced()
		if got.Name != want.Name || got.Namespace != want.Namespace || got.Terminating != (want.DeletionTimestamp != nil) {
			t.Fatalf("pod %d metadata: got %s/%s terminating %v, want %s/%s %v", i, got.Namespace, got.Name, got.Terminating, want.Namespace, want.Name, want.DeletionTimestamp)
		}
		nilIfEmpty(got)
		if g, w := got.Spec.Containers, containersOf(want.Spec.Containers); !reflect.DeepEqual(g, w) {
			t.Fatalf("pod %d containers: got %+v, want %+v", i, g, w)
		}
		if g, w := got.Spec.InitContainers, containersOf(want.Spec.InitContainers); !reflect.DeepEqual(g, w) {
			t.Fatalf("pod %d init containers: got %+v, want %+v", i, g, w)
		}
		if g, w := got.Status.ContainerStatuses, statusesOf(want.Status.ContainerStatuses); !reflect.DeepEqual(g, w) {
			t.Fatalf("pod %d container statuses: got %+v, want %+v", i, g, w)
		}
		if g, w := got.Status.InitContainerStatuses, statusesOf(want.Status.InitContainerStatuses); !reflect.DeepEqual(g, w) {
			t.Fatalf("pod %d init container statuses: got %+v, want %+v", i, g, w)
		}

		// The informer's cache hands out deep copies: equal, and sharing
		// nothing.
		cp := decoded.DeepCopyObject().(*apiPod)
		if !reflect.DeepEqual(cp, decoded) {
			t.Fatalf("pod %d: deep copy differs:\n%+v\n%+v", i, cp, decoded)
		}
		for j := range cp.Status.ContainerStatuses {
			cp.Status.ContainerStatuses[j].Name += "x"
			if w := cp.Status.ContainerStatuses[j].State.Waiting; w != nil {
				w.Reason += "x"
			}
		}
		for j := range cp.Spec.InitContainers {
			if rp := cp.Spec.InitContainers[j].RestartPolicy; rp != nil {
				*rp += "x"
			}
		}
		again := decoded.reduced()
		nilIfEmpty(again)
		if !reflect.DeepEqual(again.Status.ContainerStatuses, statusesOf(want.Status.ContainerStatuses)) ||
			!reflect.DeepEqual(again.Spec.InitContainers, containersOf(want.Spec.InitContainers)) {
			t.Fatalf("pod %d: changing the deep copy changed the original", i)
		}
	}
}

// TestPodListDecodes reads a PodList as the API server sends it.
func TestPodListDecodes(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	want := corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, ListMeta: metav1.ListMeta{ResourceVersion: "42"},
		Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
			Spec:   corev1.PodSpec{InitContainers: []corev1.Container{{Name: "proxy", RestartPolicy: &always}}, Containers: []corev1.Container{{Name: "app"}}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true}}}}}}
	b, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := podCodecs.UniversalDeserializer().Decode(b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := obj.(*apiPodList)
	if !ok || l.ResourceVersion != "42" || len(l.Items) != 1 || l.Items[0].Name != "web" {
		t.Fatalf("decoded %T %+v", obj, obj)
	}
	if ok, reason := kube.Ready(l.Items[0].reduced(), "", ""); ok || reason != "not ready: proxy (no status)" {
		t.Fatalf("Ready = %v %q", ok, reason)
	}
	cp := l.DeepCopyObject().(*apiPodList)
	if !reflect.DeepEqual(cp, l) {
		t.Fatalf("deep copy differs")
	}
	cp.Items[0].Spec.Containers[0].Name = "changed"
	if l.Items[0].Spec.Containers[0].Name != "app" {
		t.Fatal("changing the list's deep copy changed the original")
	}
}

// containersOf and statusesOf give what the reduced Pod should hold; an
// empty list is nil on both sides (JSON omits it or sends []).
func containersOf(in []corev1.Container) []kube.Container {
	if len(in) == 0 {
		return nil
	}
	out := []kube.Container{}
	for _, c := range in {
		var rp *string
		if c.RestartPolicy != nil {
			s := string(*c.RestartPolicy)
			rp = &s
		}
		out = append(out, kube.Container{Name: c.Name, RestartPolicy: rp})
	}
	return out
}

func statusesOf(in []corev1.ContainerStatus) []kube.ContainerStatus {
	if len(in) == 0 {
		return nil
	}
	out := []kube.ContainerStatus{}
	for _, st := range in {
		s := kube.ContainerStatus{Name: st.Name, Ready: st.Ready}
		if w := st.State.Waiting; w != nil {
			s.State.Waiting = &kube.ContainerStateWaiting{Reason: w.Reason}
		}
		if st.State.Running != nil {
			s.State.Running = &kube.ContainerStateRunning{}
		}
		if tm := st.State.Terminated; tm != nil {
			s.State.Terminated = &kube.ContainerStateTerminated{ExitCode: tm.ExitCode, Reason: tm.Reason}
		}
		out = append(out, s)
	}
	return out
}

func nilIfEmpty(p *kube.Pod) {
	if len(p.Spec.Containers) == 0 {
		p.Spec.Containers = nil
	}
	if len(p.Spec.InitContainers) == 0 {
		p.Spec.InitContainers = nil
	}
	if len(p.Status.ContainerStatuses) == 0 {
		p.Status.ContainerStatuses = nil
	}
	if len(p.Status.InitContainerStatuses) == 0 {
		p.Status.InitContainerStatuses = nil
	}
}

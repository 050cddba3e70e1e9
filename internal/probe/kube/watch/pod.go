package watch

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/healthbridge/healthbridge/internal/probe/kube"
)

// apiPod is a core/v1 Pod as the watch decodes it: full metadata (the
// informer keys and versions by it) and the reduced spec and status of
// kube.Pod; every other field of the API server's JSON is ignored.
type apiPod struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              kube.PodSpec   `json:"spec,omitempty"`
	Status            kube.PodStatus `json:"status,omitempty"`
}

// apiPodList is a core/v1 PodList of apiPods.
type apiPodList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []apiPod `json:"items"`
}

// reduced is what healthbridge judges of p; it shares no memory with p.
func (p *apiPod) reduced() *kube.Pod {
	return &kube.Pod{Name: p.Name, Namespace: p.Namespace, Terminating: p.DeletionTimestamp != nil,
		Spec:   kube.PodSpec{InitContainers: copyContainers(p.Spec.InitContainers), Containers: copyContainers(p.Spec.Containers)},
		Status: kube.PodStatus{InitContainerStatuses: copyStatuses(p.Status.InitContainerStatuses), ContainerStatuses: copyStatuses(p.Status.ContainerStatuses)}}
}

// DeepCopyObject implements runtime.Object: the informer's cache hands out
// the objects it holds, and nothing may share their memory.
func (p *apiPod) DeepCopyObject() runtime.Object {
	if p == nil {
		return nil
	}
	return p.deepCopy()
}

func (p *apiPod) deepCopy() *apiPod {
	out := &apiPod{TypeMeta: p.TypeMeta}
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	r := p.reduced()
	out.Spec, out.Status = r.Spec, r.Status
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *apiPodList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &apiPodList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]apiPod, len(l.Items))
		for i := range l.Items {
			out.Items[i] = *l.Items[i].deepCopy()
		}
	}
	return out
}

func copyContainers(in []kube.Container) []kube.Container {
	if in == nil {
		return nil
	}
	out := make([]kube.Container, len(in))
	for i, c := range in {
		out[i] = kube.Container{Name: c.Name}
		if c.RestartPolicy != nil {
			rp := *c.RestartPolicy
			out[i].RestartPolicy = &rp
		}
	}
	return out
}

func copyStatuses(in []kube.ContainerStatus) []kube.ContainerStatus {
	if in == nil {
		return nil
	}
	out := make([]kube.ContainerStatus, len(in))
	for i, st := range in {
		out[i] = kube.ContainerStatus{Name: st.Name, Ready: st.Ready}
		if s := st.State.Waiting; s != nil {
			w := *s
			out[i].State.Waiting = &w
		}
		if st.State.Running != nil {
			out[i].State.Running = &kube.ContainerStateRunning{}
		}
		if s := st.State.Terminated; s != nil {
			t := *s
			out[i].State.Terminated = &t
		}
	}
	return out
}

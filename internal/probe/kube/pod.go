package kube

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The types below are the part of the core/v1 Pod that Ready reads,
// declared here with the API's own JSON field names. Linking
// k8s.io/api/core/v1 for them would cost every full-build pod 1.9 MB of
// code and tables (about 5 MB of resident memory, measured with
// bench/idle); the watch decodes the API server's JSON into these and
// ignores every other field. TestPodMatchesCoreV1 decodes randomly filled
// core/v1 Pods into them and compares every field.

// Pod is a core/v1 Pod reduced to its metadata, its containers' names and
// restart policies, and its container statuses.
type Pod struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PodSpec   `json:"spec,omitempty"`
	Status            PodStatus `json:"status,omitempty"`
}

// PodSpec is core/v1 PodSpec's container lists.
type PodSpec struct {
	InitContainers []Container `json:"initContainers,omitempty"`
	Containers     []Container `json:"containers,omitempty"`
}

// Container is a core/v1 Container's name and restart policy (Always on
// an init container makes it a native sidecar).
type Container struct {
	Name          string  `json:"name"`
	RestartPolicy *string `json:"restartPolicy,omitempty"`
}

// ContainerRestartPolicyAlways is core/v1's restartPolicy of a native
// sidecar.
const ContainerRestartPolicyAlways = "Always"

// PodStatus is core/v1 PodStatus's container statuses.
type PodStatus struct {
	InitContainerStatuses []ContainerStatus `json:"initContainerStatuses,omitempty"`
	ContainerStatuses     []ContainerStatus `json:"containerStatuses,omitempty"`
}

// ContainerStatus is a core/v1 ContainerStatus's name, state and the
// kubelet's ready flag.
type ContainerStatus struct {
	Name  string         `json:"name"`
	State ContainerState `json:"state,omitempty"`
	Ready bool           `json:"ready"`
}

// ContainerState is core/v1 ContainerState: at most one member is set.
type ContainerState struct {
	Waiting    *ContainerStateWaiting    `json:"waiting,omitempty"`
	Running    *ContainerStateRunning    `json:"running,omitempty"`
	Terminated *ContainerStateTerminated `json:"terminated,omitempty"`
}

// ContainerStateWaiting is core/v1 ContainerStateWaiting's reason.
type ContainerStateWaiting struct {
	Reason string `json:"reason,omitempty"`
}

// ContainerStateRunning is core/v1 ContainerStateRunning: only its
// presence is read.
type ContainerStateRunning struct{}

// ContainerStateTerminated is core/v1 ContainerStateTerminated's exit code
// and reason.
type ContainerStateTerminated struct {
	ExitCode int32  `json:"exitCode"`
	Reason   string `json:"reason,omitempty"`
}

// PodList is a core/v1 PodList of the reduced Pods.
type PodList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Pod `json:"items"`
}

// DeepCopyObject implements runtime.Object: the informer's cache hands out
// the objects it holds, and nothing may share their memory.
func (p *Pod) DeepCopyObject() runtime.Object {
	if p == nil {
		return nil
	}
	return p.deepCopy()
}

func (p *Pod) deepCopy() *Pod {
	out := &Pod{TypeMeta: p.TypeMeta}
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.InitContainers = copyContainers(p.Spec.InitContainers)
	out.Spec.Containers = copyContainers(p.Spec.Containers)
	out.Status.InitContainerStatuses = copyStatuses(p.Status.InitContainerStatuses)
	out.Status.ContainerStatuses = copyStatuses(p.Status.ContainerStatuses)
	return out
}

func copyContainers(in []Container) []Container {
	if in == nil {
		return nil
	}
	out := make([]Container, len(in))
	for i, c := range in {
		out[i] = Container{Name: c.Name}
		if c.RestartPolicy != nil {
			rp := *c.RestartPolicy
			out[i].RestartPolicy = &rp
		}
	}
	return out
}

func copyStatuses(in []ContainerStatus) []ContainerStatus {
	if in == nil {
		return nil
	}
	out := make([]ContainerStatus, len(in))
	for i, st := range in {
		out[i] = ContainerStatus{Name: st.Name, Ready: st.Ready}
		if s := st.State.Waiting; s != nil {
			w := *s
			out[i].State.Waiting = &w
		}
		if s := st.State.Running; s != nil {
			out[i].State.Running = &ContainerStateRunning{}
		}
		if s := st.State.Terminated; s != nil {
			t := *s
			out[i].State.Terminated = &t
		}
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *PodList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &PodList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]Pod, len(l.Items))
		for i := range l.Items {
			out.Items[i] = *l.Items[i].deepCopy()
		}
	}
	return out
}

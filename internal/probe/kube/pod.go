package kube

// The types below are the part of the core/v1 Pod that Ready reads. The
// spec and status types keep the API's own JSON field names, so
// healthbridge-kube (package watch) decodes the API server's JSON straight
// into them and ignores every other field; Pod itself is what
// healthbridge-kube sends healthbridge (Message). None of them links
// k8s.io/api or apimachinery: that is the point. Package watch's
// TestPodMatchesCoreV1 decodes randomly filled core/v1 Pods into them and
// compares every field.

// Pod is a core/v1 Pod reduced to its name, whether it is terminating,
// its containers' names and restart policies, and its container statuses.
type Pod struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Terminating: metadata.deletionTimestamp is set.
	Terminating bool      `json:"terminating,omitempty"`
	Spec        PodSpec   `json:"spec"`
	Status      PodStatus `json:"status"`
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

// Message is one line healthbridge-kube writes on its standard output, as
// JSON: the watch's state after a change.
type Message struct {
	// Synced: the watch has listed the pod at least once, and Pod is what
	// its cache holds (nil: the pod does not exist).
	Synced bool `json:"synced"`
	Pod    *Pod `json:"pod,omitempty"`
	// Err is the error of the last request to the API server, "" while
	// requests succeed.
	Err string `json:"err,omitempty"`
}

// Resolved is what `healthbridge-kube resolve` writes, as JSON, once it
// has found credentials.
type Resolved struct {
	// Namespace is the kubeconfig context's namespace, "" when it sets
	// none or the credentials are the in-cluster service account's.
	Namespace string `json:"namespace"`
}

package kube

import (
	"fmt"
	"sort"
	"strings"
)

// Ready judges a pod's readiness as the kubelet reported it.
//
// With container set, that container's ready flag decides (its name
// compared case-insensitively, as http-healthcheck-sidecar); it may be a
// regular container or a native sidecar (an init container with
// restartPolicy Always), whose ready flag the kubelet also maintains.
//
// Without container: the pod must not be terminating, every container
// in the spec except self must have a status and be ready, and so must
// every native sidecar except self. Ordinary init containers run to
// completion before the containers start, so they are not judged
// themselves; while one is still running, the containers are not ready
// and the reason names it.
//
// An empty containerStatuses, a container that does not exist, a pod
// that does not exist (nil) are never ready.
func Ready(pod *Pod, container, self string) (bool, string) {
	if pod == nil {
		return false, "pod not found"
	}
	if container != "" {
		st, ok := findStatus(pod, container)
		if !ok {
			if !inSpec(pod, container) {
				return false, fmt.Sprintf("container %q does not exist in pod %s (containers: %s)", container, pod.Name, strings.Join(specNames(pod), ", "))
			}
			return false, fmt.Sprintf("container %q has no status yet", container)
		}
		if !st.Ready {
			return false, fmt.Sprintf("container %q is not ready (%s)", container, describeState(st))
		}
		return true, fmt.Sprintf("container %q is ready", container)
	}
	if pod.Terminating {
		return false, "pod is terminating"
	}
	if len(pod.Status.ContainerStatuses) == 0 {
		if running := runningInit(pod); running != "" {
			return false, fmt.Sprintf("init container %q has not completed", running)
		}
		return false, "pod has no container statuses yet"
	}
	var notReady []string
	judged := 0
	for _, name := range judgedNames(pod, self) {
		judged++
		st, ok := findStatus(pod, name)
		switch {
		case !ok:
			notReady = append(notReady, fmt.Sprintf("%s (no status)", name))
		case !st.Ready:
			notReady = append(notReady, fmt.Sprintf("%s (%s)", name, describeState(st)))
		}
	}
	if judged == 0 {
		return false, "no container to judge: the pod holds only healthbridge's own container"
	}
	if len(notReady) > 0 {
		msg := "not ready: " + strings.Join(notReady, ", ")
		if running := runningInit(pod); running != "" {
			msg += fmt.Sprintf("; init container %q has not completed", running)
		}
		return false, msg
	}
	return true, fmt.Sprintf("%d containers ready", judged)
}

// judgedNames lists the containers and native sidecars of the spec, minus
// self.
func judgedNames(pod *Pod, self string) []string {
	var names []string
	for _, c := range pod.Spec.InitContainers {
		if isSidecar(c) && c.Name != self {
			names = append(names, c.Name)
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name != self {
			names = append(names, c.Name)
		}
	}
	// A pod read without its spec (unusual): judge what has a status.
	if len(pod.Spec.Containers) == 0 {
		for _, st := range pod.Status.ContainerStatuses {
			if st.Name != self {
				names = append(names, st.Name)
			}
		}
	}
	return names
}

func isSidecar(c Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == ContainerRestartPolicyAlways
}

// runningInit names an ordinary init container that has not terminated
// successfully, or "".
func runningInit(pod *Pod) string {
	for _, c := range pod.Spec.InitContainers {
		if isSidecar(c) {
			continue
		}
		st, ok := findStatus(pod, c.Name)
		if !ok || st.State.Terminated == nil || st.State.Terminated.ExitCode != 0 {
			return c.Name
		}
	}
	return ""
}

func findStatus(pod *Pod, name string) (ContainerStatus, bool) {
	for _, list := range [][]ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for _, st := range list {
			// Case-insensitive, as http-healthcheck-sidecar compares
			// (strings.ToLower): Kubernetes names are lowercase anyway.
			if strings.EqualFold(st.Name, name) {
				return st, true
			}
		}
	}
	return ContainerStatus{}, false
}

func inSpec(pod *Pod, name string) bool {
	for _, n := range specNames(pod) {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func specNames(pod *Pod) []string {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.InitContainers {
		if isSidecar(c) {
			names = append(names, c.Name)
		}
	}
	sort.Strings(names)
	return names
}

func describeState(st ContainerStatus) string {
	switch s := st.State; {
	case s.Waiting != nil:
		if s.Waiting.Reason != "" {
			return "waiting: " + s.Waiting.Reason
		}
		return "waiting"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated: %s, exit code %d", s.Terminated.Reason, s.Terminated.ExitCode)
	case s.Running != nil:
		return "running, readiness probe failing"
	default:
		return "no state"
	}
}

package kube

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzHelperLine: any line the helper process could write is decoded as
// the prober decodes it and judged by Ready without a panic, and Ready
// says ready only when the kubelet's flags say so: the named container's
// status is ready, or (no name) the pod is not terminating and every
// container of its spec but healthbridge's own (and every native sidecar)
// has a ready status.
func FuzzHelperLine(f *testing.F) {
	f.Add([]byte(`{"synced":true,"pod":{"name":"p","namespace":"ns","spec":{"containers":[{"name":"app"},{"name":"hb"}]},"status":{"containerStatuses":[{"name":"app","ready":true,"state":{"running":{}}},{"name":"hb","ready":false}]}}}`), "", "hb")
	f.Add([]byte(`{"synced":true,"pod":{"name":"p","spec":{"initContainers":[{"name":"side","restartPolicy":"Always"},{"name":"init"}],"containers":[{"name":"app"}]},"status":{"initContainerStatuses":[{"name":"side","ready":false},{"name":"init","state":{"terminated":{"exitCode":1}}}],"containerStatuses":[{"name":"APP","ready":true}]}}}`), "", "")
	f.Add([]byte(`{"synced":true,"pod":null}`), "app", "")
	f.Add([]byte(`{"synced":true,"pod":{"terminating":true,"status":{"containerStatuses":[{"name":"app","ready":true}]}},"err":"x"}`), "App", "hb")
	f.Add([]byte(`{"synced":false}`), "", "")
	f.Fuzz(func(t *testing.T, line []byte, container, self string) {
		var m Message
		if json.Unmarshal(line, &m) != nil {
			return
		}
		ready, reason := Ready(m.Pod, container, self)
		if reason == "" {
			t.Fatal("no reason given")
		}
		if !ready {
			return
		}
		pod := m.Pod
		first := func(name string) (ContainerStatus, bool) {
			for _, st := range append(append([]ContainerStatus{}, pod.Status.ContainerStatuses...), pod.Status.InitContainerStatuses...) {
				if strings.EqualFold(st.Name, name) {
					return st, true
				}
			}
			return ContainerStatus{}, false
		}
		if container != "" {
			if st, ok := first(container); !ok || !st.Ready {
				t.Fatalf("container %q ready without a ready status: %s", container, line)
			}
			return
		}
		if pod.Terminating {
			t.Fatalf("a terminating pod is ready: %s", line)
		}
		judged := 0
		judge := func(c Container) {
			if c.Name == self {
				return
			}
			judged++
			if st, ok := first(c.Name); !ok || !st.Ready {
				t.Fatalf("ready, but %q has no ready status (self %q): %s", c.Name, self, line)
			}
		}
		for _, c := range pod.Spec.Containers {
			judge(c)
		}
		for _, c := range pod.Spec.InitContainers {
			if c.RestartPolicy != nil && *c.RestartPolicy == ContainerRestartPolicyAlways {
				judge(c) // a native sidecar; an ordinary init container is not judged
			}
		}
		if len(pod.Spec.Containers) > 0 && judged == 0 {
			t.Fatalf("ready with no container judged: %s", line)
		}
	})
}

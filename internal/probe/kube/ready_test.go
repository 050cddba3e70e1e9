package kube

import (
	"strings"
	"testing"
)

func pod(spec []string, sidecars []string, inits []string, statuses map[string]bool) *Pod {
	always := ContainerRestartPolicyAlways
	p := &Pod{Name: "web"}
	for _, n := range spec {
		p.Spec.Containers = append(p.Spec.Containers, Container{Name: n})
	}
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, Container{Name: n})
	}
	for _, n := range sidecars {
		p.Spec.InitContainers = append(p.Spec.InitContainers, Container{Name: n, RestartPolicy: &always})
	}
	for n, ready := range statuses {
		st := ContainerStatus{Name: n, Ready: ready, State: ContainerState{Running: &ContainerStateRunning{}}}
		isInit := false
		for _, c := range p.Spec.InitContainers {
			isInit = isInit || c.Name == n
		}
		if isInit {
			if !ready && !contains(sidecars, n) {
				st.State = ContainerState{Running: &ContainerStateRunning{}}
			} else if !contains(sidecars, n) {
				st.State = ContainerState{Terminated: &ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}
			}
			p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, st)
		} else {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, st)
		}
	}
	return p
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestReady(t *testing.T) {
	terminating := pod([]string{"app"}, nil, nil, map[string]bool{"app": true})
	terminating.Terminating = true
	tests := []struct {
		name      string
		pod       *Pod
		container string
		self      string
		ok        bool
		reason    string
	}{
		{"named container ready", pod([]string{"app", "hb"}, nil, nil, map[string]bool{"app": true, "hb": false}), "app", "", true, `container "app" is ready`},
		{"named container not ready", pod([]string{"app"}, nil, nil, map[string]bool{"app": false}), "app", "", false, `container "app" is not ready (running, readiness probe failing)`},
		{"named container, other case (http-healthcheck-sidecar)", pod([]string{"app"}, nil, nil, map[string]bool{"app": true}), "App", "", true, `container "App" is ready`},
		{"named container missing", pod([]string{"app"}, nil, nil, map[string]bool{"app": true}), "db", "", false, `container "db" does not exist in pod web (containers: app)`},
		{"named container without status", pod([]string{"app", "db"}, nil, nil, map[string]bool{"app": true}), "db", "", false, `container "db" has no status yet`},
		{"named native sidecar", pod([]string{"app"}, []string{"proxy"}, nil, map[string]bool{"app": false, "proxy": true}), "proxy", "", true, `"proxy" is ready`},
		{"all but self", pod([]string{"app", "hb"}, nil, nil, map[string]bool{"app": true, "hb": false}), "", "hb", true, "1 containers ready"},
		{"all, one not ready", pod([]string{"app", "db", "hb"}, nil, nil, map[string]bool{"app": true, "db": false, "hb": true}), "", "hb", false, "not ready: db (running, readiness probe failing)"},
		{"all, self not excluded", pod([]string{"app", "hb"}, nil, nil, map[string]bool{"app": true, "hb": false}), "", "", false, "not ready: hb"},
		{"empty statuses", pod([]string{"app"}, nil, nil, nil), "", "", false, "pod has no container statuses yet"},
		{"missing status for a spec container", pod([]string{"app", "db"}, nil, nil, map[string]bool{"app": true}), "", "", false, "db (no status)"},
		{"native sidecar counts", pod([]string{"app"}, []string{"proxy"}, nil, map[string]bool{"app": true, "proxy": false}), "", "", false, "not ready: proxy"},
		{"native sidecar ready", pod([]string{"app"}, []string{"proxy"}, nil, map[string]bool{"app": true, "proxy": true}), "", "", true, "2 containers ready"},
		{"completed init container ignored", pod([]string{"app"}, nil, []string{"migrate"}, map[string]bool{"app": true, "migrate": true}), "", "", true, "1 containers ready"},
		{"init container still running", pod([]string{"app"}, nil, []string{"migrate"}, map[string]bool{"migrate": false}), "", "", false, `init container "migrate" has not completed`},
		{"terminating", terminating, "", "", false, "pod is terminating"},
		{"only self", pod([]string{"hb"}, nil, nil, map[string]bool{"hb": true}), "", "hb", false, "no container to judge"},
		{"no pod", nil, "", "", false, "pod not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := Ready(tt.pod, tt.container, tt.self)
			if ok != tt.ok || !strings.Contains(reason, tt.reason) {
				t.Fatalf("Ready = %v %q, want %v containing %q", ok, reason, tt.ok, tt.reason)
			}
		})
	}
}

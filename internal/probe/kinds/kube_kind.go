//go:build !lean && !nokube

package kinds

import "github.com/healthbridge/healthbridge/internal/probe/kube"

// kubeKind is the kubernetesPod kind, which links client-go and
// k8s.io/api; -tags lean (or nokube) leaves it out (kube_absent.go).
var kubeKind = &kube.Kind

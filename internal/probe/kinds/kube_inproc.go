//go:build !lean && !nokube && !kubehelper

package kinds

import (
	"context"
	"io"

	"github.com/healthbridge/healthbridge/internal/probe/kube"
	"github.com/healthbridge/healthbridge/internal/probe/kube/helper"
)

// The kubernetesPod kind's watch runs inside healthbridge: measured by the
// container's working set, client-go in healthbridge costs a pod with the
// check about 3 MB less than the healthbridge-kube process (its own Go
// runtime, all anonymous memory), and a pod without one about 0.5 MB more
// (e2e TestKubePodCheckWorkingSet). -tags kubehelper builds the helper
// process design instead. healthbridge's own idle collector covers the
// watch.
func init() {
	kube.InProcess = func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return helper.Run(ctx, args, stdin, stdout, stderr, false)
	}
}

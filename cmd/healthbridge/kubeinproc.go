//go:build kubeinproc && !lean

package main

import (
	"context"
	"io"

	"github.com/healthbridge/healthbridge/internal/probe/kube"
	"github.com/healthbridge/healthbridge/internal/probe/kube/helper"
)

// A build with -tags kubeinproc runs the kubernetesPod kind's watch inside
// healthbridge (client-go linked in) instead of as healthbridge-kube: for
// measuring the two designs against each other only (e2e
// TestKubePodCheckWorkingSet); the shipped builds use the helper process.
// healthbridge's own idle collector covers the watch.
func init() {
	kube.InProcess = func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return helper.Run(ctx, args, stdin, stdout, stderr, false)
	}
}

//go:build lean || nokube

package kinds

import (
	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// kubeKind is left out of this build: a config that uses it is told which
// build has it.
var kubeKind = probe.Absent("kubernetesPod", probe.LeanTag, func(c *config.Check) bool { return c.KubernetesPod != nil })

func init() { Lean = true }

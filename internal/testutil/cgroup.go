package testutil

import (
	"testing"

	"github.com/healthbridge/healthbridge/internal/cgmem"
)

// MemCgroup is a memory cgroup of the test's own (cgroup v1's memory
// controller, or v2), for measuring a process tree's memory as the kubelet
// does a container's. It needs root; it is removed at the test's end,
// after the processes in it are killed.
type MemCgroup struct{ g *cgmem.Group }

// MemUsage is what the kubelet reads of a memory cgroup, in bytes.
type MemUsage = cgmem.Usage

// NewMemCgroup makes a memory cgroup named after the test process and name.
func NewMemCgroup(t *testing.T, name string) *MemCgroup {
	t.Helper()
	g, err := cgmem.New("test-" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Remove(); err != nil {
			t.Logf("memory cgroup: %v", err)
		}
	})
	return &MemCgroup{g: g}
}

// Procs is the cgroup's cgroup.procs file: a pid written there moves that
// process (and the children it starts later) into the cgroup.
func (c *MemCgroup) Procs() string { return c.g.Procs() }

// Read reads the cgroup's usage.
func (c *MemCgroup) Read(t *testing.T) MemUsage {
	t.Helper()
	u, err := c.g.Read()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

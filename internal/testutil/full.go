//go:build !lean

package testutil

// Lean says the tests run with -tags lean; false: the full build.
const Lean = false

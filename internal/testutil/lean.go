//go:build lean

package testutil

// Lean says the tests run with -tags lean, and so does the binary they
// build.
const Lean = true

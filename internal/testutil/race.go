//go:build race

package testutil

// raceEnabled: these tests run with -race, and so does the binary they build.
const raceEnabled = true

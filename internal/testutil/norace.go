//go:build !race

package testutil

// raceEnabled: these tests run without -race.
const raceEnabled = false

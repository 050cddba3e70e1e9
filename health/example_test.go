package health_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/healthbridge/healthbridge/health"
)

// An application's life, as the liveness tool describes it: start-up checks, then
// healthy, a temporary error, and reset at shutdown.
func Example() {
	rundir, _ := os.MkdirTemp("", "rundir")
	defer os.RemoveAll(rundir)
	os.Setenv(health.EnvRunDir, rundir) // or /run/<HOSTNAME> by default

	dbReachable := func(ctx context.Context) error { return nil }
	if err := health.Load(context.Background(), "worker", dbReachable); err != nil {
		fmt.Println("start-up checks failed:", err)
		return
	}
	dir := filepath.Join(rundir, "worker")
	show := func() {
		v, _ := health.Inspect(dir, health.InspectOptions{})
		fmt.Println(v.Healthy, v.Code)
	}
	_ = health.Set(0) // the main routine starts
	show()
	_ = health.Set(3) // something went wrong
	show()
	_ = health.Set(0)
	show()
	_ = health.Reset() // shutdown
	v, _ := health.Inspect(dir, health.InspectOptions{})
	fmt.Println(v.Healthy, v.Reason == "not started: "+filepath.Join(dir, "pid")+" does not exist")
	// Output:
	// true 0
	// false 3
	// true 0
	// false true
}

// A failing start-up check returns its error and writes nothing.
func ExampleUnit_Load() {
	rundir, _ := os.MkdirTemp("", "rundir")
	defer os.RemoveAll(rundir)
	u, _ := health.NewUnit(rundir, "api")
	err := u.Load(context.Background(), func(context.Context) error { return errors.New("config missing") })
	fmt.Println(err)
	_, statErr := os.Stat(filepath.Join(u.Dir(), health.PidFile))
	fmt.Println(os.IsNotExist(statErr))
	fmt.Println(u.Set(0) == health.ErrNotLoaded)
	// Output:
	// health: start-up check 0 failed: config missing
	// true
	// true
}

// Command bare is bench/idle's floor: a net/http server answering "ok" to
// every request on the address given as its first argument, built the same
// way as healthbridge (static, stripped) so the two are compared like for
// like.
//
//	bare ADDR          serve only
//	bare ADDR exec     also run `true` every second with os/exec, as the
//	                   plainest Go program doing one exec check's work
//	                   (exechealthz's loop, without its HTTP client)
//	bare ADDR exec-trim  the same, and debug.FreeOSMemory every 10 s as
//	                   healthbridge's idlegc does when idle: what the Go
//	                   runtime itself keeps for this work
package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"time"
)

func main() {
	if len(os.Args) > 2 && (os.Args[2] == "exec" || os.Args[2] == "exec-trim") {
		go func() {
			for range time.Tick(time.Second) {
				_ = exec.Command("true").Run()
			}
		}()
	}
	if len(os.Args) > 2 && os.Args[2] == "exec-trim" {
		go func() {
			for range time.Tick(10 * time.Second) {
				debug.FreeOSMemory()
			}
		}()
	}
	_ = http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
}

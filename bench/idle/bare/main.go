// Command bare is bench/idle's floor: a net/http server answering "ok" to
// every request on the address given as its argument, built the same way
// as healthbridge (static, stripped) so the two are compared like for like.
package main

import (
	"io"
	"net/http"
	"os"
)

func main() {
	_ = http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
}

// Command nodeapp is the application container of healthbridge's
// real-node tests: an app whose state a test changes over HTTP from
// outside the pod (the tests never exec into containers).
//
//	nodeapp [-control :9999] [-app :8080]
//
// The control port always answers:
//
//	GET /listen     start listening on the app port (the default at start)
//	GET /unlisten   close the app port: connections are refused
//	GET /fail       the app port's /healthz answers 500 from now on
//	GET /heal       and 200 again
//	GET /touch?f=P  create file P; GET /rm?f=P removes it
//	GET /exit?code=N  exit with status N
//	GET /sigterm    "yes" once the process got SIGTERM, else "no"
//
// The app port answers /healthz (200 "ok", or 500 after /fail) and any
// other path with 200. SIGTERM is logged ("nodeapp: SIGTERM") and ends the
// process with status 0 after -term-delay (default 0).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	control := flag.String("control", ":9999", "control address")
	appAddr := flag.String("app", ":8080", "app address")
	termDelay := flag.Duration("term-delay", 0, "time between SIGTERM and exit")
	termCode := flag.Int("term-code", 0, "exit status after SIGTERM")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("nodeapp: ")

	var failing atomic.Bool
	app := http.NewServeMux()
	app.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	app.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "app") })

	var mu sync.Mutex
	var ln net.Listener
	listen := func() error {
		mu.Lock()
		defer mu.Unlock()
		if ln != nil {
			return nil
		}
		l, err := net.Listen("tcp", *appAddr)
		if err != nil {
			return err
		}
		ln = l
		go func() { _ = http.Serve(l, app) }()
		log.Printf("listening on %s", *appAddr)
		return nil
	}
	unlisten := func() {
		mu.Lock()
		defer mu.Unlock()
		if ln != nil {
			ln.Close()
			ln = nil
			log.Printf("closed %s", *appAddr)
		}
	}
	if err := listen(); err != nil {
		log.Fatal(err)
	}

	c := http.NewServeMux()
	c.HandleFunc("/listen", func(w http.ResponseWriter, r *http.Request) {
		if err := listen(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "listening")
	})
	c.HandleFunc("/unlisten", func(w http.ResponseWriter, r *http.Request) { unlisten(); fmt.Fprintln(w, "closed") })
	c.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { failing.Store(true); fmt.Fprintln(w, "failing") })
	c.HandleFunc("/heal", func(w http.ResponseWriter, r *http.Request) { failing.Store(false); fmt.Fprintln(w, "healed") })
	c.HandleFunc("/touch", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(r.URL.Query().Get("f"), nil, 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "touched")
	})
	c.HandleFunc("/rm", func(w http.ResponseWriter, r *http.Request) {
		if err := os.Remove(r.URL.Query().Get("f")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "removed")
	})
	c.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Fprintln(w, "exiting", code)
		log.Printf("exiting with %d", code)
		go func() { time.Sleep(100 * time.Millisecond); os.Exit(code) }()
	})
	var termed atomic.Bool
	c.HandleFunc("/sigterm", func(w http.ResponseWriter, r *http.Request) {
		if termed.Load() {
			fmt.Fprintln(w, "yes")
			return
		}
		fmt.Fprintln(w, "no")
	})
	go func() {
		s := make(chan os.Signal, 1)
		signal.Notify(s, syscall.SIGTERM)
		<-s
		termed.Store(true)
		log.Printf("SIGTERM")
		time.Sleep(*termDelay)
		os.Exit(*termCode)
	}()
	log.Printf("control on %s", *control)
	log.Fatal(http.ListenAndServe(*control, c))
}

package compat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/server"
	"github.com/healthbridge/healthbridge/internal/state"
)

// The environment variables of bryopsida/http-healthcheck-sidecar.
const (
	EnvTargetContainer = "HTTP_HEALTHCHECK_SIDECAR_TARGET_CONTAINER"
	EnvPodOverride     = "HTTP_HEALTHCHECK_SIDECAR_TARGET_POD_OVERRIDE"
	EnvStateOverride   = "HTTP_HEALTHCHECK_SIDECAR_STATE_OVERRIDE"
)

// The original's address and path.
const (
	HTTPHealthcheckListen = ":3000"
	HTTPHealthcheckPath   = "/health"
)

// HTTPHealthcheck is http-healthcheck-sidecar's configuration, read from its environment.
type HTTPHealthcheck struct {
	// Container is the container whose readiness decides; "" for every
	// container of the pod but healthbridge's own.
	Container string
	// Pod is the pod to read; "" for $HOSTNAME.
	Pod string
	// Override, when not nil, fixes the answer without asking the API
	// server: true always healthy, false always unhealthy.
	Override *bool
}

// IsHTTPHealthcheck reports whether any of http-healthcheck-sidecar's
// variables is set to a non-empty value (the original reads each with
// os.Getenv and treats "" as unset).
func IsHTTPHealthcheck(lookup func(string) (string, bool)) bool {
	for _, k := range []string{EnvTargetContainer, EnvPodOverride, EnvStateOverride} {
		if v, _ := lookup(k); v != "" {
			return true
		}
	}
	return false
}

// ParseHTTPHealthcheck reads http-healthcheck-sidecar's variables. The
// state override must be true or false in any case, or empty (unset).
func ParseHTTPHealthcheck(lookup func(string) (string, bool)) (*HTTPHealthcheck, error) {
	h := &HTTPHealthcheck{}
	h.Container, _ = lookup(EnvTargetContainer)
	h.Pod, _ = lookup(EnvPodOverride)
	// The original compares strings.ToLower(v) == "true": TRUE and True
	// are true. Any other value it took as false; healthbridge refuses
	// what is neither true nor false in any case, rather than guess.
	switch v, _ := lookup(EnvStateOverride); strings.ToLower(v) {
	case "":
	case "true":
		t := true
		h.Override = &t
	case "false":
		f := false
		h.Override = &f
	default:
		return nil, fmt.Errorf("%s=%q: must be true or false (any case), or unset", EnvStateOverride, v)
	}
	return h, nil
}

// Config is the healthbridge config equivalent to h (without an override):
// one kubernetesPod check answered on :3000. The original asked the API
// server on every request; a watch makes that free, so the check runs every
// second with thresholds of 1 to keep the original's immediacy.
func (h *HTTPHealthcheck) Config(listen string) *config.Config {
	c := &config.Config{Listen: listen, FailureStatusCode: http.StatusInternalServerError}
	ch := config.Check{Name: "pod", KubernetesPod: &config.KubernetesPodAction{Container: h.Container, Pod: h.Pod}}
	ch.PeriodSeconds, ch.SuccessThreshold, ch.FailureThreshold = 1, 1, 1
	c.Checks = []config.Check{ch}
	c.SetDefaults(kinds.Rules)
	return c
}

// Wrap is the http-healthcheck-sidecar mode as middleware: GET /health
// answers as the original, 200 "OK" when the check is healthy, else 500
// "UNAVAILABLE" (its README documents 500; its code sent 503, and both are
// failures to every load balancer); every other path is 404, never a
// redirect, and core is not served (the original had nothing else).
func (h *HTTPHealthcheck) Wrap(_ http.Handler, store *state.Store) http.Handler {
	health := server.ReadOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := store.Snapshot().Get("pod")
		writeHealth(w, c != nil && c.State.Status == state.StatusHealthy)
	}))
	return exactPaths(health)
}

func writeHealth(w http.ResponseWriter, ok bool) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if ok {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "OK")
		return
	}
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, "UNAVAILABLE")
}

// ServeOverride serves the fixed answer of the state override on listen
// until ctx is done: GET /health only, every other path 404. The API server
// is never asked.
func ServeOverride(ctx context.Context, listen string, healthy bool, log *slog.Logger) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HTTPHealthcheckPath, func(w http.ResponseWriter, r *http.Request) { writeHealth(w, healthy) })
	srv := server.NewHTTPServer(exactPaths(mux), log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "state_override", healthy)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// exactPaths answers 404 for any path but /health itself, so ServeMux never
// redirects (a redirect looks healthy to HAProxy and the kubelet).
func exactPaths(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != HTTPHealthcheckPath {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

//go:build !lean

package app

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/healthbridge/healthbridge/internal/server"
)

// runtimeMetrics are the Go runtime's and the process's metrics (go_*,
// process_*), from client_golang's collectors.
func runtimeMetrics() server.MetricsWriter {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return server.Gathered(reg)
}

//go:build lean

package app

import "github.com/healthbridge/healthbridge/internal/server"

// runtimeMetrics: the lean build links no Prometheus client, so its
// /metrics has healthbridge's own families only, no go_* or process_*.
func runtimeMetrics() server.MetricsWriter { return nil }

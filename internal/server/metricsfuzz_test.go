package server

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// FuzzMetricsText: whatever the checks are named and whatever their kinds,
// outcomes, durations and child restarts, the /metrics text parses with
// Prometheus' own text parser, with one family per name.
func FuzzMetricsText(f *testing.F) {
	f.Add("web", "httpGet", "db.primary", uint8(1), int64(1234567), uint64(3), true)
	f.Add("a\"b\\c\nd", "exec", "", uint8(0), int64(-5), uint64(0), false)
	f.Add("ünïcode-☃", "tcpSocket", "x_y", uint8(3), int64(1<<62), uint64(1<<63), true)
	f.Fuzz(func(t *testing.T, name, kind, other string, outcome uint8, micros int64, restarts uint64, child bool) {
		if name == other {
			other += "-2"
		}
		s := state.NewStore([]state.Spec{
			{Name: name, Kind: kind, Roles: []config.Role{config.RoleLiveness, config.RoleReadiness}, Policy: state.Policy{FailureThreshold: 1}},
			{Name: other, Kind: "exec", ExitCodes: true, Roles: []config.Role{config.RoleStartup}, Policy: state.Policy{FailureThreshold: 1}},
		}, t0)
		o := []probe.Outcome{probe.OutcomeSuccess, probe.OutcomeFailure, probe.OutcomeWarning, probe.OutcomeUnknown, probe.OutcomeStarting}[outcome%5]
		s.Record(name, probe.Result{Outcome: o, Start: t0, End: t0.Add(time.Duration(micros) * time.Microsecond), ExitCode: 2}, t0)
		if child {
			s.SetChild(&state.ChildState{Pid: 7, Restarts: map[string]uint64{state.ReasonExit: restarts, state.ReasonStartup: 1}})
		}
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		writeCheckMetrics(w, s.Snapshot())
		_ = w.Flush()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		if _, err := parser.TextToMetricFamilies(bytes.NewReader(b.Bytes())); err != nil {
			t.Fatalf("not valid text format: %v\n%s", err, b.String())
		}
	})
}

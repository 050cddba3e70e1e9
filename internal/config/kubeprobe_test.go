package config_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"
	"sigs.k8s.io/yaml"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
)

// TestEveryKubeProbeFieldDecodesTheSame: config.Check declares the
// kubelet's Probe fields itself (so it does not link k8s.io/api). Random
// core/v1.Probe values, every field filled (all four handlers at once),
// are encoded by k8s.io/api, decoded into a config.Check, encoded again
// and decoded by k8s.io/api: the result equals the original, so every
// field has the same JSON name, type and value in both.
func TestEveryKubeProbeFieldDecodesTheSame(t *testing.T) {
	f := randfill.NewWithSeed(1).NilChance(0).NumElements(1, 3).Funcs(
		func(v *intstr.IntOrString, c randfill.Continue) {
			if c.Bool() {
				*v = intstr.FromInt32(c.Int31())
			} else {
				*v = intstr.FromString(c.String(8))
			}
		})
	for i := 0; i < 200; i++ {
		var want corev1.Probe
		f.Fill(&want)
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var c config.Check
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("decoding %s: %v", b, err)
		}
		back, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var got corev1.Probe
		if err := json.Unmarshal(back, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip through config.Check changed the probe:\n in: %s\nout: %s", b, back)
		}
	}
	// And every JSON field of core/v1.Probe is known to config.Check:
	// nothing above was dropped silently because both sides were zero.
	var all corev1.Probe
	f.Fill(&all)
	b, _ := json.Marshal(all)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "timeoutSeconds",
		"periodSeconds", "successThreshold", "failureThreshold", "terminationGracePeriodSeconds"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %s missing from a filled core/v1.Probe: the test does not fill every field", k)
		}
	}
}

// TestPodSpecProbePastes: a container's readinessProbe, taken from a pod
// spec that k8s.io/api decodes, pastes under a check and loads.
func TestPodSpecProbePastes(t *testing.T) {
	const pod = `
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
    - name: web
      image: web:1
      readinessProbe:
        httpGet:
          path: /ready
          port: 8080
          scheme: HTTP
          httpHeaders:
            - {name: X-Probe, value: kubelet}
        initialDelaySeconds: 2
        periodSeconds: 5
        timeoutSeconds: 2
        successThreshold: 2
        failureThreshold: 4
        terminationGracePeriodSeconds: 30
`
	var p corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(pod), &p); err != nil {
		t.Fatal(err)
	}
	body, err := yaml.Marshal(p.Spec.Containers[0].ReadinessProbe)
	if err != nil {
		t.Fatal(err)
	}
	indented := "    " + strings.ReplaceAll(strings.TrimSpace(string(body)), "\n", "\n    ")
	cfg, err := kinds.Parse([]byte("checks:\n  - name: web\n    roles: [readiness]\n" + indented + "\n"))
	if err != nil {
		t.Fatalf("%v\nconfig:\n%s", err, indented)
	}
	c := cfg.Checks[0]
	want := p.Spec.Containers[0].ReadinessProbe
	if c.HTTPGet == nil || c.HTTPGet.Path != "/ready" || c.HTTPGet.Port.IntValue() != 8080 || string(c.HTTPGet.Scheme) != "HTTP" ||
		len(c.HTTPGet.HTTPHeaders) != 1 || c.HTTPGet.HTTPHeaders[0].Value != "kubelet" ||
		c.InitialDelaySeconds != want.InitialDelaySeconds || c.PeriodSeconds != want.PeriodSeconds ||
		c.TimeoutSeconds != want.TimeoutSeconds || c.SuccessThreshold != want.SuccessThreshold ||
		c.FailureThreshold != want.FailureThreshold || *c.TerminationGracePeriodSeconds != 30 {
		t.Fatalf("pasted probe decoded as %+v", c)
	}
}

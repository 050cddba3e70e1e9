package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/healthbridge/healthbridge/internal/testutil"
)

// TestCertificateExpiryWarns: against servers whose certificate expires in
// an hour, an httpGet check and a grpc check with tls.minValidity 2h warn
// (JSON "warn", /readyz still 200, a warn log line and a "warn" event),
// one with minValidity 30m passes cleanly, and every one exports the
// certificate's NotAfter as healthbridge_check_tls_cert_expiry_timestamp_seconds.
func TestCertificateExpiryWarns(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testutil.SelfSigned(t, dir, "localhost")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(certFile)
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := strings.Cut(srv.Listener.Addr().String(), "127.0.0.1:")
	checks := fmt.Sprintf(`listen: 127.0.0.1:0
checks:
  - name: soon
    periodSeconds: 1
    httpGet: {scheme: HTTPS, port: %[1]s, tls: {caFile: %[2]s, serverName: localhost, minValidity: 2h}}
  - name: fine
    periodSeconds: 1
    httpGet: {scheme: HTTPS, port: %[1]s, tls: {insecureSkipVerify: true, minValidity: 30m}}
`, port, certFile)
	if !testutil.Lean {
		gaddr, _ := testutil.GRPCServer(t, true, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}})))
		_, gport, _ := strings.Cut(gaddr, "127.0.0.1:")
		checks += fmt.Sprintf("  - name: rpc\n    periodSeconds: 1\n    grpc: {port: %s, tls: {caFile: %s, serverName: localhost, minValidity: 2h}}\n", gport, certFile)
	}
	p := start(t, "--config", writeConfig(t, checks))
	code, body := p.WaitFor(t, "/readyz?format=json", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, `"status": "warn"`)
	})
	var doc struct {
		Status string
		Checks map[string][]struct {
			Status        string
			TLSCertExpiry string
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"soon": "warn", "fine": "pass"}
	if !testutil.Lean {
		want["rpc"] = "warn"
	}
	for name, st := range want {
		items := doc.Checks[name]
		if len(items) != 1 || items[0].Status != st || items[0].TLSCertExpiry != cert.NotAfter.UTC().Format(time.RFC3339) {
			t.Errorf("check %s: %+v, want status %s and tlsCertExpiry %s (readyz %d)", name, items, st, cert.NotAfter.UTC().Format(time.RFC3339), code)
		}
	}
	_, metrics := p.Get(t, "/metrics")
	for name := range want {
		line := ""
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, `healthbridge_check_tls_cert_expiry_timestamp_seconds{check="`+name+`"`) {
				line = l
			}
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("no expiry series for %s in /metrics", name)
		}
		if v, _ := strconv.ParseFloat(f[1], 64); int64(v) != cert.NotAfter.Unix() {
			t.Errorf("%s: %s, want %d", name, line, cert.NotAfter.Unix())
		}
	}
	logs := p.Logs()
	if !strings.Contains(logs, `level=WARN msg="check warns" check=soon`) || !strings.Contains(logs, "within tls.minValidity 2h0m0s") {
		t.Errorf("no warn log line for soon:\n%s", logs)
	}
	if strings.Contains(logs, `msg="check warns" check=fine`) {
		t.Errorf("fine warned:\n%s", logs)
	}
}

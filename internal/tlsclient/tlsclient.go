// Package tlsclient builds the client TLS configuration of a probe from
// its config.TLS block: the one place the grpc and httpGet kinds (and the
// one-shot client) read CA bundles and client certificates.
package tlsclient

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"healthbridge/internal/config"
)

// Config builds a client TLS config from t, reading its files now, so a
// missing or bad file is a start-up error. Errors name the field under
// path ("grpc.tls.caFile: ..."). Without InsecureSkipVerify the server's
// certificate is verified against CAFile (default: the system roots), for
// ServerName when set.
func Config(t *config.TLS, path string) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, ServerName: t.ServerName} //nolint:gosec // asked for by the config
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, config.Errorf(path+".caFile", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, config.Errorf(path+".caFile", "%s: no PEM certificates", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, config.Errorf(path+".certFile", "%v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

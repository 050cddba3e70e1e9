// Package tlsclient builds the client TLS configuration of a probe from
// its config.TLS block: the one place the grpc and httpGet kinds (and the
// one-shot client) read CA bundles and client certificates.
package tlsclient

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
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

// Flags registers the one-shot client's TLS flags on fs (--insecure, --ca,
// --server-name, --cert, --key) and returns a function, to call after
// parsing, that builds the client TLS config from them and reports
// whether any of them was given.
func Flags(fs *pflag.FlagSet) func() (*tls.Config, bool, error) {
	var t config.TLS
	fs.BoolVar(&t.InsecureSkipVerify, "insecure", false, "do not verify the server's certificate")
	fs.StringVar(&t.CAFile, "ca", "", "PEM file of CAs to verify the server with (default: the system's)")
	fs.StringVar(&t.ServerName, "server-name", "", "name to verify in the server's certificate")
	fs.StringVar(&t.CertFile, "cert", "", "client certificate (PEM), with --key")
	fs.StringVar(&t.KeyFile, "key", "", "client key (PEM), with --cert")
	return func() (*tls.Config, bool, error) {
		given := t != config.TLS{}
		tc, err := Config(&t, "tls")
		return tc, given, err
	}
}

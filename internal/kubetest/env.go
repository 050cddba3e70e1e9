package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/healthbridge/healthbridge/internal/proc"
)

// Users with static bearer tokens in every Env. Admin is in system:masters;
// the others have no permissions until a test binds a Role to them.
const (
	Admin  = "kubetest-admin"
	Reader = "hb-reader"
	Denied = "hb-denied"
)

// readyTimeout bounds waiting for etcd and the API server.
const readyTimeout = 2 * time.Minute

// Env is a running etcd and kube-apiserver.
type Env struct {
	// Server is the API server's URL, https://127.0.0.1:<port>.
	Server string
	// CAFile is the PEM of the CA that signed the serving certificate.
	CAFile string
	// AuditLog is the API server's audit log (JSON lines, level Metadata).
	AuditLog string
	// Dir holds certificates, data and logs.
	Dir string

	kasBin, etcdBin string
	opt             Options
	tokens          map[string]string
	kasPort         int
	etcdURL         string

	// mu guards the processes.
	mu   sync.Mutex
	etcd *exec.Cmd
	kas  *exec.Cmd
}

// Options changes how Start sets up the API server.
type Options struct {
	// ServiceCIDR is --service-cluster-ip-range; its first address is the
	// ClusterIP of the "kubernetes" Service that pods are told of
	// (KUBERNETES_SERVICE_HOST). Default 10.0.0.0/24.
	ServiceCIDR string
	// ServingIPs are more IP addresses the serving certificate is valid
	// for, beside 127.0.0.1 (a node's address that forwards to it).
	ServingIPs []net.IP
}

// Start builds (if needed) and starts etcd and kube-apiserver in dir.
// Stop them with Stop. log receives progress lines.
func Start(dir string, log func(string)) (*Env, error) {
	return StartWith(dir, Options{}, log)
}

// StartWith is Start with options.
func StartWith(dir string, opt Options, log func(string)) (*Env, error) {
	kas, etcd, err := Binaries(log)
	if err != nil {
		return nil, err
	}
	if opt.ServiceCIDR == "" {
		opt.ServiceCIDR = "10.0.0.0/24"
	}
	e := &Env{Dir: dir, kasBin: kas, etcdBin: etcd, tokens: map[string]string{}, opt: opt}
	if err := e.pki(); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	e.kasPort = ports[2]
	e.Server = "https://127.0.0.1:" + strconv.Itoa(e.kasPort)
	e.etcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	e.etcd = command(etcd, filepath.Join(dir, "etcd.log"),
		"--name", "kubetest", "--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", e.etcdURL, "--advertise-client-urls", e.etcdURL,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "kubetest="+peer, "--unsafe-no-fsync", "--log-level", "warn")
	if err := e.etcd.Start(); err != nil {
		return nil, err
	}
	if err := waitHTTP(http.DefaultClient, e.etcdURL+"/health", "", e.etcd); err != nil {
		e.Stop()
		return nil, fmt.Errorf("etcd: %w (log %s)", err, filepath.Join(dir, "etcd.log"))
	}
	if err := e.StartAPIServer(); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer) on the
// same port and waits for /readyz.
func (e *Env) StartAPIServer() error {
	pki := filepath.Join(e.Dir, "pki")
	cmd := command(e.kasBin, filepath.Join(e.Dir, "kube-apiserver.log"),
		"--etcd-servers", e.etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(e.kasPort),
		"--tls-cert-file", filepath.Join(pki, "apiserver.crt"), "--tls-private-key-file", filepath.Join(pki, "apiserver.key"),
		"--client-ca-file", filepath.Join(pki, "ca.crt"),
		"--token-auth-file", filepath.Join(pki, "tokens.csv"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(pki, "sa.pub"), "--service-account-signing-key-file", filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range", e.opt.ServiceCIDR,
		"--authorization-mode", "RBAC",
		"--endpoint-reconciler-type", "none",
		"--audit-policy-file", filepath.Join(pki, "audit-policy.yaml"), "--audit-log-path", e.AuditLog,
		"--audit-log-mode", "blocking",
		"--cert-dir", pki)
	if err := cmd.Start(); err != nil {
		return err
	}
	e.mu.Lock()
	e.kas = cmd
	e.mu.Unlock()
	client, err := e.httpClient()
	if err != nil {
		return err
	}
	if err := waitHTTP(client, e.Server+"/readyz", e.tokens[Admin], cmd); err != nil {
		return fmt.Errorf("kube-apiserver: %w (log %s)", err, filepath.Join(e.Dir, "kube-apiserver.log"))
	}
	return nil
}

// StopAPIServer stops kube-apiserver and waits for it; etcd keeps running.
func (e *Env) StopAPIServer() {
	e.mu.Lock()
	cmd := e.kas
	e.kas = nil
	e.mu.Unlock()
	stopProcess(cmd)
}

// Stop stops both. It is safe to call more than once.
func (e *Env) Stop() {
	e.StopAPIServer()
	e.mu.Lock()
	cmd := e.etcd
	e.etcd = nil
	e.mu.Unlock()
	stopProcess(cmd)
}

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// command prepares a server process in its own process group that dies
// with the test process (Pdeathsig), logging to logFile.
func command(bin, logFile string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	if f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func waitHTTP(client *http.Client, url, token string, cmd *exec.Cmd) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if !proc.Running(cmd.Process.Pid) {
			return errors.New("process exited")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v", url, readyTimeout)
}

func (e *Env) httpClient() (*http.Client, error) {
	pem, err := os.ReadFile(e.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// Port is the API server's port on 127.0.0.1.
func (e *Env) Port() int { return e.kasPort }

// Token returns the bearer token of a user (Admin, Reader, Denied).
func (e *Env) Token(user string) string { return e.tokens[user] }

// RESTConfig is a client config for user.
func (e *Env) RESTConfig(user string) *rest.Config {
	return &rest.Config{Host: e.Server, BearerToken: e.tokens[user], TLSClientConfig: rest.TLSClientConfig{CAFile: e.CAFile}}
}

// Client returns a clientset for user.
func (e *Env) Client(user string) (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(e.RESTConfig(user))
}

// Kubeconfig writes a kubeconfig for user with namespace ns as the
// context's namespace ("" for none) and returns its path.
func (e *Env) Kubeconfig(user, ns string) (string, error) {
	nsLine := ""
	if ns != "" {
		nsLine = ", namespace: " + ns
	}
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster: {server: %q, certificate-authority: %q}
users:
- name: %s
  user: {token: %q}
contexts:
- name: kubetest
  context: {cluster: kubetest, user: %s%s}
current-context: kubetest
`, e.Server, e.CAFile, user, e.tokens[user], user, nsLine)
	f, err := os.CreateTemp(e.Dir, "kubeconfig-"+user+"-*")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.WriteString(body)
	return f.Name(), err
}

// AuditCount counts audit events (ResponseComplete or ResponseStarted) made
// by user for resource, by verb.
func (e *Env) AuditCount(user, resource string) (map[string]int, error) {
	b, err := os.ReadFile(e.AuditLog)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `"username":"`+user+`"`) || !strings.Contains(line, `"resource":"`+resource+`"`) {
			continue
		}
		for _, v := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
			if strings.Contains(line, `"verb":"`+v+`"`) {
				counts[v]++
			}
		}
	}
	return counts, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// pki writes a CA, a serving certificate for 127.0.0.1, the
// service-account key pair, the token file and the audit policy.
func (e *Env) pki() error {
	dir := filepath.Join(e.Dir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	e.CAFile = filepath.Join(dir, "ca.crt")
	e.AuditLog = filepath.Join(e.Dir, "audit.log")
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubetest-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: append([]net.IP{net.ParseIP("127.0.0.1")}, e.opt.ServingIPs...), DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	saPub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	files := map[string][]byte{
		"ca.crt":        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"apiserver.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		"apiserver.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}),
		"sa.key":        pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
		"sa.pub":        pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		// Metadata for every request, once it completes (or starts
		// streaming, for watches): enough to count who asked what.
		"audit-policy.yaml": []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n"),
	}
	var tokens strings.Builder
	for i, u := range []string{Admin, Reader, Denied} {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		e.tokens[u] = hex.EncodeToString(b)
		groups := ""
		if u == Admin {
			groups = `,"system:masters"`
		}
		fmt.Fprintf(&tokens, "%s,%s,uid-%d%s\n", e.tokens[u], u, i, groups)
	}
	files["tokens.csv"] = []byte(tokens.String())
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

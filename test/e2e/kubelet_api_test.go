package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubeletAPI is the kubelet's HTTPS API as the test sets it up: a CA of
// the test's signs the kubelet's serving certificate and the one client
// certificate that may call it.
type kubeletAPI struct {
	port                          int
	caFile, serverCert, serverKey string
	ca                            *x509.CertPool
	client                        tls.Certificate
}

// newKubeletAPI writes the CA, the serving certificate and key into dir.
func newKubeletAPI(dir string, port int) (kubeletAPI, error) {
	a := kubeletAPI{port: port, caFile: filepath.Join(dir, "ca.crt"),
		serverCert: filepath.Join(dir, "kubelet.crt"), serverKey: filepath.Join(dir, "kubelet.key")}
	caKey, caCert, err := newCert(&x509.Certificate{
		Subject: pkix.Name{CommonName: "criserver-e2e-ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	if err != nil {
		return a, err
	}
	a.ca = x509.NewCertPool()
	a.ca.AddCert(caCert)
	if err := writePEM(a.caFile, "CERTIFICATE", caCert.Raw); err != nil {
		return a, err
	}
	srvKey, srvCert, err := newCert(&x509.Certificate{
		Subject: pkix.Name{CommonName: kubeletNode}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, caKey)
	if err != nil {
		return a, err
	}
	if err := writePEM(a.serverCert, "CERTIFICATE", srvCert.Raw); err != nil {
		return a, err
	}
	der, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return a, err
	}
	if err := writePEM(a.serverKey, "EC PRIVATE KEY", der); err != nil {
		return a, err
	}
	cliKey, cliCert, err := newCert(&x509.Certificate{
		Subject:  pkix.Name{CommonName: "criserver-e2e", Organization: []string{"system:masters"}},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	if err != nil {
		return a, err
	}
	a.client = tls.Certificate{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey}
	return a, nil
}

// newCert makes a key and a certificate from tmpl signed by parent (self
// signed when parent is nil), valid for an hour.
func newCert(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// get fetches path from the kubelet's API, with the client certificate or
// without any.
func (a kubeletAPI) get(path string, withCert bool) (int, string, error) {
	cfg := &tls.Config{RootCAs: a.ca, MinVersion: tls.VersionTLS12}
	if withCert {
		cfg.Certificates = []tls.Certificate{a.client}
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d%s", a.port, path))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// checkAPI: the kubelet's API refuses a caller without a certificate and
// lists the static pods to one with the test's.
func (k *runningKubelet) checkAPI(t *testing.T, pods ...string) {
	t.Helper()
	if code, _, err := k.api.get("/pods", false); err != nil || code != http.StatusUnauthorized {
		t.Errorf("kubelet API without a client certificate: %d %v, want 401", code, err)
	}
	code, body, err := k.api.get("/pods", true)
	if err != nil || code != http.StatusOK {
		t.Fatalf("kubelet API /pods with the client certificate: %d %v", code, err)
	}
	for _, p := range pods {
		if !strings.Contains(body, `"name":"`+p+`"`) {
			t.Errorf("kubelet /pods lacks %s:\n%s", p, body)
		}
	}
}

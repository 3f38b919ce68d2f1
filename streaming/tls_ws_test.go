package streaming

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeSelfSigned writes a loopback certificate and key.
func writeSelfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "criserver-stream"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile
}

func TestTLS(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = writeSelfSigned(t)
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(&fakeRuntime{}); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	resp, err := s.GetExec(&runtime.ExecRequest{ContainerId: "c1", Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Url, "https://127.0.0.1:") {
		t.Fatalf("url %q is not https", resp.Url)
	}
	e, err := remotecommand.NewSPDYExecutor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAFile: cfg.TLSCertFile}}, http.MethodPost, mustParse(t, resp.Url))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := e.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdin: strings.NewReader("over tls"), Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "over tls" {
		t.Fatalf("stdout %q", out.String())
	}

	cfg.TLSKeyFile = cfg.TLSCertFile
	if _, err := NewServer(cfg); err == nil {
		t.Fatal("a certificate as key was accepted")
	}
}

// The library's WebSocket port-forward: per port a data and an error
// channel, each opened with the port as 2 little-endian bytes.
func TestPortForwardWebSocket(t *testing.T) {
	s := startServer(t, &fakeRuntime{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") }))
	defer backend.Close()
	port := backend.Listener.Addr().(*net.TCPAddr).Port

	resp, err := s.GetPortForward(&runtime.PortForwardRequest{PodSandboxId: "p1", Port: []int32{int32(port)}})
	if err != nil {
		t.Fatal(err)
	}
	wsURL := "ws" + strings.TrimPrefix(resp.Url, "http")
	d := websocket.Dialer{Subprotocols: []string{"v4.channel.k8s.io"}}
	conn, _, err := d.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, ch := range []byte{0, 1} {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) != 3 || msg[0] != ch || int(binary.LittleEndian.Uint16(msg[1:])) != port {
			t.Fatalf("channel %d opened with %v", ch, msg)
		}
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, append([]byte{0}, "GET / HTTP/1.0\r\n\r\n"...)); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.HasSuffix(got.String(), "pong") {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %q: %v", got.String(), err)
		}
		if len(msg) > 0 && msg[0] == 1 && len(msg) > 1 {
			t.Fatalf("error channel: %s", msg[1:])
		}
		if len(msg) > 0 && msg[0] == 0 {
			got.Write(msg[1:])
		}
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

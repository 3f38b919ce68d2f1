package streaming

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	criserverstreaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// Runtime runs the sessions the server accepts: the cri package implements
// it over the OCI runtime and the pod sandboxes.
type Runtime = criserverstreaming.Runtime

// TerminalSize is one terminal resize sent by the client.
type TerminalSize = remotecommand.TerminalSize

// Server hands out single-use, expiring session URLs and serves them.
type Server struct {
	cfg      Config
	listener net.Listener
	baseURL  *url.URL

	sessions *sessions

	mu   sync.Mutex
	rt   Runtime
	lib  criserverstreaming.Server // nil until Start
	http *http.Server
	done chan struct{}
}

// NewServer binds the listener (and loads the TLS key pair), so the
// address is known and bad settings fail the daemon before it serves.
// Sessions are served once Start is called.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load stream server key pair: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("listen for streaming: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	s := &Server{cfg: cfg, listener: ln, sessions: newSessions(), baseURL: advertisedURL(net.ParseIP(cfg.Address), port, tlsConfig != nil)}
	if tlsConfig != nil {
		s.listener = tls.NewListener(ln, tlsConfig)
	}
	return s, nil
}

// advertisedURL is the base of the session URLs: the bound address, with
// an unspecified IP replaced by loopback so the URL can be dialled.
func advertisedURL(ip net.IP, port int, https bool) *url.URL {
	if ip.IsUnspecified() {
		if ip.To4() != nil {
			ip = net.IPv4(127, 0, 0, 1)
		} else {
			ip = net.IPv6loopback
		}
	}
	u := &url.URL{Scheme: "http", Host: net.JoinHostPort(ip.String(), strconv.Itoa(port)), Path: "/"}
	if https {
		u.Scheme = "https"
	}
	return u
}

// URL is the base URL sessions are served under.
func (s *Server) URL() string { return s.baseURL.String() }

// Start serves sessions with rt in the background until Stop.
func (s *Server) Start(rt Runtime) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lib != nil {
		return errors.New("stream server already started")
	}
	cfg := criserverstreaming.DefaultConfig
	cfg.Addr = s.listener.Addr().String()
	cfg.BaseURL = s.baseURL
	cfg.StreamIdleTimeout = s.cfg.IdleTimeout
	cfg.StreamCreationTimeout = s.cfg.StreamCreationTimeout
	cfg.SupportedRemoteCommandProtocols = remotecommand.SupportedStreamingProtocols
	cfg.SupportedPortForwardProtocols = portforward.SupportedProtocols
	lib, err := criserverstreaming.NewServer(cfg, rt)
	if err != nil {
		return fmt.Errorf("create stream server: %w", err)
	}
	s.lib, s.rt = lib, rt
	s.http = &http.Server{
		Handler:           cancelOnHangup(http.HandlerFunc(s.serve)),
		ReadHeaderTimeout: 30 * time.Second,
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		err := s.http.Serve(s.listener)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Stream server stopped", "url", s.URL())
		}
	}()
	klog.InfoS("Stream server serving", "url", s.URL())
	return nil
}

// Stop closes the listener and every open session.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http == nil {
		return s.listener.Close()
	}
	err := s.http.Close()
	<-s.done
	return err
}

func (s *Server) started() (criserverstreaming.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lib == nil {
		return nil, status.Error(codes.Unavailable, "stream server is not started")
	}
	return s.lib, nil
}

// GetExec returns the URL of an exec session for a validated request.
func (s *Server) GetExec(req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	lib, err := s.started()
	if err != nil {
		return nil, err
	}
	resp, err := lib.GetExec(req)
	if err != nil {
		return nil, err
	}
	s.sessions.add(resp.Url, req)
	return resp, nil
}

// GetAttach returns the URL of an attach session for a validated request.
func (s *Server) GetAttach(req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	lib, err := s.started()
	if err != nil {
		return nil, err
	}
	resp, err := lib.GetAttach(req)
	if err != nil {
		return nil, err
	}
	s.sessions.add(resp.Url, req)
	return resp, nil
}

// GetPortForward returns the URL of a port-forward session for a
// validated request.
func (s *Server) GetPortForward(req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	lib, err := s.started()
	if err != nil {
		return nil, err
	}
	resp, err := lib.GetPortForward(req)
	if err != nil {
		return nil, err
	}
	s.sessions.add(resp.Url, req)
	return resp, nil
}

// serve admits each session URL once, then hands v5 WebSocket exec and
// attach sessions to serveV5 and everything else to the library.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	req, ok := s.sessions.take(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if _, remote := optionsOf(req); remote && wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		serveV5(w, r, s.rt, req, s.cfg.IdleTimeout)
		return
	}
	s.lib.ServeHTTP(w, r)
}

// Package streaming serves exec, attach and port-forward sessions over
// HTTP for the URLs the CRI Exec, Attach and PortForward calls return. The
// k8s.io/cri-streaming library speaks the protocols (SPDY and WebSocket);
// this package owns its listener, TLS, the detection of clients that go
// away, and the network-namespace side of port forwarding.
package streaming

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config is the [stream] section of the daemon configuration.
type Config struct {
	// Address is the IP the server listens on. The URLs handed to the
	// kubelet carry it, so an unspecified address (0.0.0.0, ::) is
	// advertised as loopback.
	Address string `toml:"address"`
	// Port is the TCP port; 0 picks a free one at start.
	Port int `toml:"port"`
	// TLSCertFile and TLSKeyFile, set together, serve HTTPS.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// IdleTimeout closes a session with no traffic for this long.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// StreamCreationTimeout bounds how long a SPDY client may take to open
	// the streams it asked for.
	StreamCreationTimeout time.Duration `toml:"stream_creation_timeout"`
}

// DefaultConfig listens on loopback at a port chosen at start, like
// containerd's stream server.
func DefaultConfig() Config {
	return Config{
		Address:               "127.0.0.1",
		IdleTimeout:           4 * time.Hour,
		StreamCreationTimeout: 30 * time.Second,
	}
}

// Validate names the offending key.
func (c Config) Validate() error {
	if net.ParseIP(c.Address) == nil {
		return fmt.Errorf("address: %q is not an IP address", c.Address)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("port: %d is out of range 0-65535", c.Port)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("tls_cert_file, tls_key_file: set both or neither")
	}
	if c.IdleTimeout <= 0 {
		return fmt.Errorf("idle_timeout: %v must be positive", c.IdleTimeout)
	}
	if c.StreamCreationTimeout <= 0 {
		return fmt.Errorf("stream_creation_timeout: %v must be positive", c.StreamCreationTimeout)
	}
	return nil
}

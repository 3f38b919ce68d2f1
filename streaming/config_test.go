package streaming

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"ipv6 any", func(c *Config) { c.Address = "::" }, ""},
		{"hostname", func(c *Config) { c.Address = "localhost" }, "address"},
		{"port range", func(c *Config) { c.Port = 70000 }, "port"},
		{"cert without key", func(c *Config) { c.TLSCertFile = "/x.pem" }, "tls_cert_file"},
		{"zero idle", func(c *Config) { c.IdleTimeout = 0 }, "idle_timeout"},
		{"negative creation", func(c *Config) { c.StreamCreationTimeout = -time.Second }, "stream_creation_timeout"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.mutate(&c)
		err := c.Validate()
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: Validate() = %v, want error naming %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestAdvertisedURLUnspecified(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Address = "0.0.0.0"
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || strings.HasSuffix(s.URL(), ":0/") {
		t.Fatalf("URL %q: want loopback with the chosen port", s.URL())
	}
}

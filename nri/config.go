package nri

import (
	"fmt"
	"path/filepath"
	"time"
)

// Config is the [nri] section of the daemon configuration.
type Config struct {
	// Enable turns NRI on. Off, no socket is created and every hook is a
	// no-op.
	Enable bool `toml:"enable"`
	// SocketPath is where external plugins connect.
	SocketPath string `toml:"socket_path"`
	// PluginPath holds plugins the daemon starts itself (NN-name binaries).
	PluginPath string `toml:"plugin_path"`
	// PluginConfigPath holds configuration files for those plugins.
	PluginConfigPath string `toml:"plugin_config_path"`
	// PluginRegistrationTimeout bounds how long a plugin may take to
	// register and synchronize.
	PluginRegistrationTimeout time.Duration `toml:"plugin_registration_timeout"`
	// PluginRequestTimeout bounds each call into a plugin; a plugin that
	// misses it is disconnected.
	PluginRequestTimeout time.Duration `toml:"plugin_request_timeout"`
	// DisableConnections refuses external plugins: only those under
	// PluginPath run.
	DisableConnections bool `toml:"disable_connections"`
}

// DefaultConfig is NRI off, with the paths and timeouts other runtimes use,
// so that plugins find the socket where they look for it.
func DefaultConfig() Config {
	return Config{
		SocketPath:                "/var/run/nri/nri.sock",
		PluginPath:                "/opt/nri/plugins",
		PluginConfigPath:          "/etc/nri/conf.d",
		PluginRegistrationTimeout: 5 * time.Second,
		PluginRequestTimeout:      2 * time.Second,
	}
}

// Validate names the first bad key.
func (c Config) Validate() error {
	for key, p := range map[string]string{"socket_path": c.SocketPath, "plugin_path": c.PluginPath, "plugin_config_path": c.PluginConfigPath} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%s: %q is not an absolute path", key, p)
		}
	}
	if c.PluginRegistrationTimeout <= 0 {
		return fmt.Errorf("plugin_registration_timeout: %v must be positive", c.PluginRegistrationTimeout)
	}
	if c.PluginRequestTimeout <= 0 {
		return fmt.Errorf("plugin_request_timeout: %v must be positive", c.PluginRequestTimeout)
	}
	return nil
}

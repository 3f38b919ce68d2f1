package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Config is the [sandbox] section of the daemon configuration.
type Config struct {
	// ShmSize is the size in bytes of each pod's /dev/shm tmpfs.
	ShmSize int64 `toml:"shm_size"`
	// InfraBinary runs the infra process of pods that share a PID
	// namespace; empty re-executes the daemon itself. A replacement must
	// behave as RunInfra does, including the readiness line on stdout.
	InfraBinary string `toml:"infra_binary"`
}

// DefaultConfig is what a node without a config file gets.
func DefaultConfig() Config {
	return Config{ShmSize: DefaultShmSize}
}

// Validate names the offending key.
func (c Config) Validate() error {
	if c.ShmSize < 4096 {
		return errors.New("shm_size: must be at least 4096 bytes")
	}
	if c.InfraBinary != "" && !filepath.IsAbs(c.InfraBinary) {
		return fmt.Errorf("infra_binary: %q is not an absolute path", c.InfraBinary)
	}
	return nil
}

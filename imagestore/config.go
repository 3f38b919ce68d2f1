// Package imagestore pulls registry images into an overlay2 layer store and
// keeps the image records: names, digests, sizes, and the layers they use.
package imagestore

import (
	"errors"
	"fmt"
	"time"
)

// Config is the [image] section of the daemon configuration.
type Config struct {
	// RegistriesConfig is a containers-registries.conf(5) file: mirrors,
	// insecure and blocked registries, short-name aliases. Empty means none.
	RegistriesConfig string `toml:"registries_config"`
	// AuthFile is a containers-auth.json(5) file used when a pull carries no
	// credentials of its own. Empty means none.
	AuthFile string `toml:"auth_file"`
	// MaxConcurrentDownloads bounds the layers one pull fetches at once.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads"`
	// ProgressTimeout aborts a layer download that receives no bytes for this long.
	ProgressTimeout time.Duration `toml:"progress_timeout"`
	// PinnedImages are never removed by the kubelet's image GC.
	PinnedImages []string `toml:"pinned_images"`
}

// DefaultConfig is what a node without a config file gets.
func DefaultConfig() Config {
	return Config{
		MaxConcurrentDownloads: 3,
		ProgressTimeout:        time.Minute,
	}
}

// Validate names the offending key.
func (c Config) Validate() error {
	if c.MaxConcurrentDownloads < 1 {
		return fmt.Errorf("max_concurrent_downloads: %d must be at least 1", c.MaxConcurrentDownloads)
	}
	if c.ProgressTimeout <= 0 {
		return errors.New("progress_timeout: must be positive")
	}
	return nil
}

package sandbox

import "testing"

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{DefaultConfig(), true},
		{Config{ShmSize: 1 << 20, InfraBinary: "/usr/local/bin/infra"}, true},
		{Config{ShmSize: 0}, false},
		{Config{ShmSize: 1 << 20, InfraBinary: "infra"}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}

package cri

import (
	"testing"
)

func TestImageUser(t *testing.T) {
	tests := []struct {
		user   string
		uid    int64
		hasUID bool
		name   string
	}{
		{"", 0, false, ""},
		{"0", 0, true, ""},
		{"1000", 1000, true, ""},
		{"1000:1000", 1000, true, ""},
		{"app", 0, false, "app"},
		{"app:staff", 0, false, "app"},
		{"-1", 0, false, "-1"},
	}
	for _, tt := range tests {
		uid, name := imageUser(tt.user)
		if (uid != nil) != tt.hasUID || (uid != nil && *uid != tt.uid) || name != tt.name {
			t.Errorf("imageUser(%q) = %v, %q", tt.user, uid, name)
		}
	}
}

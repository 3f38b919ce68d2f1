package cri

import (
	"strings"
	"testing"
)

func TestCappedBuffer(t *testing.T) {
	tests := []struct {
		max    int
		writes []string
		want   string
	}{
		{max: 5, writes: []string{"abc"}, want: "abc"},
		{max: 5, writes: []string{"abc", "defg"}, want: "abcde"},
		{max: 5, writes: []string{"abcde", "f"}, want: "abcde"},
		{max: 0, writes: []string{"x"}, want: ""},
	}
	for _, tt := range tests {
		b := &cappedBuffer{max: tt.max}
		for _, w := range tt.writes {
			if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, n, err)
			}
		}
		if got := string(b.Bytes()); got != tt.want {
			t.Errorf("max %d writes %q: got %q, want %q", tt.max, strings.Join(tt.writes, "|"), got, tt.want)
		}
	}
}

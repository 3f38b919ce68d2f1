package imagestore

import (
	"errors"
	"testing"
)

func TestParseRef(t *testing.T) {
	const d = "sha256:8b15dea5ccd1e4d1fb5a0aa4a9d1b1d8f4e1f1b5a6e7d8c9b0a1f2e3d4c5b6a7"
	tests := []struct {
		in, want, tag, digest string
	}{
		{"busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36", ""},
		{"library/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"index.docker.io/library/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
		{"user/app:v1", "docker.io/user/app:v1", "docker.io/user/app:v1", ""},
		{"busybox@" + d, "docker.io/library/busybox@" + d, "", "docker.io/library/busybox@" + d},
		{"busybox:1.36@" + d, "docker.io/library/busybox:1.36@" + d, "docker.io/library/busybox:1.36", "docker.io/library/busybox@" + d},
		{"127.0.0.1:5000/app", "127.0.0.1:5000/app:latest", "127.0.0.1:5000/app:latest", ""},
		{"localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t", ""},
		{"quay.io/x/y:1", "quay.io/x/y:1", "quay.io/x/y:1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := parseRef(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != tt.want {
				t.Errorf("String() = %q, want %q", r.String(), tt.want)
			}
			if r.repoTag() != tt.tag {
				t.Errorf("repoTag() = %q, want %q", r.repoTag(), tt.tag)
			}
			gotDigest := ""
			if r.digest != "" {
				gotDigest = r.repoDigestFor(r.digest)
			}
			if gotDigest != tt.digest {
				t.Errorf("repo digest = %q, want %q", gotDigest, tt.digest)
			}
		})
	}
}

func TestParseRefInvalid(t *testing.T) {
	for _, in := range []string{"", "UPPER/case", "a b", "busybox:", "busybox@sha256:short", ":tag", "busybox:tag:tag",
		"8b15dea5ccd1e4d1fb5a0aa4a9d1b1d8f4e1f1b5a6e7d8c9b0a1f2e3d4c5b6a7"} {
		if _, err := parseRef(in); !errors.Is(err, ErrInvalidReference) {
			t.Errorf("parseRef(%q) = %v, want ErrInvalidReference", in, err)
		}
	}
}

func TestIsLoopbackRegistry(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost": true, "localhost:443": true, "[::1]:5000": true, "127.1.2.3": true,
		"docker.io": false, "quay.io:443": false, "10.0.0.1:5000": false, "localhost.example.com": false,
	} {
		if got := isLoopbackRegistry(in); got != want {
			t.Errorf("isLoopbackRegistry(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestNormalizeID(t *testing.T) {
	for in, want := range map[string]string{
		"sha256:abc": "abc", "abc": "abc", "ABC": "", "busybox": "", "sha256:": "", "": "",
	} {
		if got := normalizeID(in); got != want {
			t.Errorf("normalizeID(%q) = %q, want %q", in, got, want)
		}
	}
}

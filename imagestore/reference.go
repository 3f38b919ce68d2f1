package imagestore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker/reference"
)

// ErrInvalidReference is returned for a reference that is neither a valid
// image name nor an image ID.
var ErrInvalidReference = errors.New("invalid image reference")

// imageRef is a parsed, normalized image reference: the repository always
// carries its registry (docker.io/library/busybox), and a reference without
// tag or digest means :latest, as the kubelet and Docker read it.
type imageRef struct {
	named  reference.Named // repository only, no tag or digest
	tag    string          // "" when the reference names only a digest
	digest digest.Digest   // "" when the reference names only a tag
}

// parseRef normalizes s. A bare image ID is not a reference; callers try IDs first.
func parseRef(s string) (imageRef, error) {
	if s == "" {
		return imageRef{}, fmt.Errorf("%w: empty", ErrInvalidReference)
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return imageRef{}, fmt.Errorf("%w %q: %v", ErrInvalidReference, s, err)
	}
	var r imageRef
	r.named = reference.TrimNamed(named)
	if t, ok := named.(reference.Tagged); ok {
		r.tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.digest = d.Digest()
		if err := r.digest.Validate(); err != nil {
			return imageRef{}, fmt.Errorf("%w %q: %v", ErrInvalidReference, s, err)
		}
	}
	if r.tag == "" && r.digest == "" {
		r.tag = "latest"
	}
	return r, nil
}

// name is the normalized repository, e.g. docker.io/library/busybox.
func (r imageRef) name() string { return r.named.Name() }

// repoTag is name:tag, or "" for a digest-only reference.
func (r imageRef) repoTag() string {
	if r.tag == "" {
		return ""
	}
	return r.name() + ":" + r.tag
}

// repoDigestFor is name@d.
func (r imageRef) repoDigestFor(d digest.Digest) string {
	return r.name() + "@" + d.String()
}

// String is the full normalized reference, tag and digest included.
func (r imageRef) String() string {
	s := r.name()
	if r.tag != "" {
		s += ":" + r.tag
	}
	if r.digest != "" {
		s += "@" + r.digest.String()
	}
	return s
}

// fetchRef is what the registry is asked for: the digest when there is one
// (a tag next to it only names the result), else the tag.
func (r imageRef) fetchRef() (reference.Named, error) {
	if r.digest != "" {
		return reference.WithDigest(r.named, r.digest)
	}
	return reference.WithTag(r.named, r.tag)
}

// domain is the registry host[:port].
func (r imageRef) domain() string { return reference.Domain(r.named) }

// isLoopbackRegistry reports whether the registry is on this machine, which
// is reached over plain HTTP by default as containerd and Docker do.
func isLoopbackRegistry(domain string) bool {
	host := domain
	if strings.HasPrefix(host, "[") {
		if i := strings.Index(host, "]"); i > 0 {
			host = host[1:i]
		}
	} else if i := strings.LastIndex(host, ":"); i >= 0 {
		host = host[:i]
	}
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

// normalizeID accepts "sha256:<hex>" or "<hex>" (full or a prefix) and
// returns the hex part, or "" when s cannot be an ID or ID prefix.
func normalizeID(s string) string {
	h := strings.TrimPrefix(s, "sha256:")
	if h == "" || len(h) > 64 {
		return ""
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return h
}

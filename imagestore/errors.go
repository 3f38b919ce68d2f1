package imagestore

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/docker/distribution/registry/api/errcode"
	v2 "github.com/docker/distribution/registry/api/v2"
	"go.podman.io/image/v5/docker"
)

// ErrUnauthorized is returned when the registry refuses the credentials.
var ErrUnauthorized = errors.New("registry refused the credentials")

// classifyRegistryError marks the registry answers callers act on: an
// unknown name or tag (ErrNotFound) and refused credentials (ErrUnauthorized).
func classifyRegistryError(err error) error {
	var ec errcode.ErrorCoder
	if errors.As(err, &ec) {
		code := ec.ErrorCode()
		if code == v2.ErrorCodeManifestUnknown || code == v2.ErrorCodeNameUnknown ||
			code.Descriptor().HTTPStatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		if code == errcode.ErrorCodeUnauthorized || code == errcode.ErrorCodeDenied {
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
	}
	var ua docker.ErrUnauthorizedForCredentials
	if errors.As(err, &ua) {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return err
}

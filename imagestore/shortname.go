package imagestore

import (
	"path/filepath"
	"strings"

	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/types"
	"k8s.io/klog/v2"
)

// normalize parses ref and applies a short-name alias from the configured
// registries.conf when ref names no registry. Pull, Resolve and Remove all
// go through it, so a name pulled through an alias is found by that name.
func (s *Store) normalize(ref string) (imageRef, error) {
	r, err := parseRef(ref)
	if err != nil || s.cfg.RegistriesConfig == "" || !isShortName(ref) {
		return r, err
	}
	alias, _, err := sysregistriesv2.ResolveShortNameAlias(s.registriesContext(), reference.FamiliarName(r.named))
	if err != nil {
		klog.V(2).InfoS("Short-name alias lookup failed; using docker.io", "ref", ref, "err", err)
		return r, nil
	}
	if alias != nil {
		r.named = reference.TrimNamed(alias)
	}
	return r, nil
}

// isShortName reports whether ref names no registry: its first path
// component looks like neither a host nor host:port.
func isShortName(ref string) bool {
	first, _, hasSlash := strings.Cut(ref, "/")
	if !hasSlash {
		return true
	}
	return !strings.ContainsAny(first, ".:") && first != "localhost"
}

// registriesContext points containers/image at the configured
// registries.conf only, never at per-user files of the host.
func (s *Store) registriesContext() *types.SystemContext {
	sys := &types.SystemContext{
		SystemRegistriesConfPath:   s.cfg.RegistriesConfig,
		UserShortNameAliasConfPath: filepath.Join(s.imageDir, "short-name-aliases.conf"),
	}
	if s.cfg.RegistriesConfig != "" {
		sys.SystemRegistriesConfDirPath = s.cfg.RegistriesConfig + ".d"
	}
	return sys
}

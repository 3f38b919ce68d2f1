package oci

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultSeccompJSON is criserver's RuntimeDefault profile: deny with
// EPERM, allow a list of syscalls, and allow the privileged ones only to
// containers holding the capability they need.
//
//go:embed seccomp_default.json
var defaultSeccompJSON []byte

// seccompFile is the profile file format, the one Docker and the
// security-profiles-operator write: runtime-spec fields plus archMap and
// per-rule includes/excludes on capabilities and architectures.
type seccompFile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures   []specs.Arch             `json:"architectures,omitempty"`
	ArchMap         []struct {
		Arch      specs.Arch   `json:"architecture"`
		SubArches []specs.Arch `json:"subArchitectures"`
	} `json:"archMap,omitempty"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
	Syscalls         []seccompRule            `json:"syscalls"`
}

type seccompRule struct {
	Name     string                   `json:"name,omitempty"` // older single-name form
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
	Includes seccompFilter            `json:"includes"`
	Excludes seccompFilter            `json:"excludes"`
}

// seccompFilter limits a rule to containers with all of Caps and to the
// Go architectures in Arches (excludes: to containers without any).
type seccompFilter struct {
	Caps   []string `json:"caps,omitempty"`
	Arches []string `json:"arches,omitempty"`
}

// nativeArch maps GOARCH to libseccomp's architecture name.
var nativeArch = map[string]specs.Arch{
	"amd64": specs.ArchX86_64, "386": specs.ArchX86, "arm64": specs.ArchAARCH64, "arm": specs.ArchARM,
	"ppc64le": specs.ArchPPC64LE, "s390x": specs.ArchS390X, "riscv64": specs.ArchRISCV64,
	"mips64": specs.ArchMIPS64, "mips64le": specs.ArchMIPSEL64, "loong64": specs.ArchLOONGARCH64,
}

// seccompProfile resolves the CRI seccomp settings: nil means unconfined
// (the CRI's default), RuntimeDefault the embedded profile, Localhost an
// absolute path to a JSON profile. caps are the container's capabilities.
func seccompProfile(sc *runtime.LinuxContainerSecurityContext, caps []string) (*specs.LinuxSeccomp, error) {
	kind, ref := runtime.SecurityProfile_Unconfined, ""
	switch p := sc.GetSeccomp(); {
	case p != nil:
		kind, ref = p.GetProfileType(), p.GetLocalhostRef()
	case sc.GetSeccompProfilePath() != "":
		switch v := sc.GetSeccompProfilePath(); {
		case v == "runtime/default" || v == "docker/default":
			kind = runtime.SecurityProfile_RuntimeDefault
		case v == "unconfined":
		case strings.HasPrefix(v, "localhost/"):
			kind, ref = runtime.SecurityProfile_Localhost, strings.TrimPrefix(v, "localhost/")
		default:
			return nil, invalidf("unknown seccomp profile %q", v)
		}
	}
	switch kind {
	case runtime.SecurityProfile_Unconfined:
		return nil, nil
	case runtime.SecurityProfile_RuntimeDefault:
		prof, err := parseSeccomp(defaultSeccompJSON, caps, goruntime.GOARCH)
		if err != nil {
			return nil, fmt.Errorf("built-in seccomp profile: %w", err)
		}
		return prof, nil
	case runtime.SecurityProfile_Localhost:
		if !filepath.IsAbs(ref) {
			return nil, invalidf("seccomp localhost profile %q must be an absolute path", ref)
		}
		b, err := readProfile(ref)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, invalidf("seccomp profile %q does not exist", ref)
		}
		if err != nil {
			return nil, invalidf("read seccomp profile %q: %v", ref, err)
		}
		prof, err := parseSeccomp(b, caps, goruntime.GOARCH)
		if err != nil {
			return nil, invalidf("seccomp profile %q: %v", ref, err)
		}
		return prof, nil
	default:
		return nil, invalidf("unknown seccomp profile type %v", kind)
	}
}

// maxProfileSize bounds a seccomp profile file (real ones are tens of KiB).
const maxProfileSize = 4 << 20

// readProfile reads a regular file of bounded size: a path to a FIFO or
// /dev/zero must not hang or exhaust the daemon.
func readProfile(p string) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if st.Size() > maxProfileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxProfileSize)
	}
	return os.ReadFile(p)
}

// parseSeccomp turns a profile file into the runtime-spec form for a
// container with caps on goarch.
func parseSeccomp(b []byte, caps []string, goarch string) (*specs.LinuxSeccomp, error) {
	var f seccompFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse profile: %w", err)
	}
	if f.DefaultAction == "" {
		return nil, errors.New("profile has no defaultAction")
	}
	out := &specs.LinuxSeccomp{
		DefaultAction: f.DefaultAction, DefaultErrnoRet: f.DefaultErrnoRet,
		Flags: f.Flags, ListenerPath: f.ListenerPath, ListenerMetadata: f.ListenerMetadata,
	}
	if len(f.ArchMap) > 0 {
		native := nativeArch[goarch]
		for _, a := range f.ArchMap {
			if a.Arch == native {
				out.Architectures = append(append(out.Architectures, a.Arch), a.SubArches...)
			}
		}
	} else {
		out.Architectures = f.Architectures
	}
	have := map[string]bool{}
	for _, c := range caps {
		have[c] = true
	}
	for i, r := range f.Syscalls {
		names := r.Names
		if r.Name != "" {
			names = append([]string{r.Name}, names...)
		}
		if len(names) == 0 || r.Action == "" {
			return nil, fmt.Errorf("syscall rule %d has no names or no action", i)
		}
		if !ruleApplies(r, have, goarch) {
			continue
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: names, Action: r.Action, ErrnoRet: r.ErrnoRet, Args: r.Args})
	}
	return out, nil
}

func ruleApplies(r seccompRule, have map[string]bool, goarch string) bool {
	for _, c := range r.Includes.Caps {
		if !have[c] {
			return false
		}
	}
	if len(r.Includes.Arches) > 0 && !contains(r.Includes.Arches, goarch) {
		return false
	}
	for _, c := range r.Excludes.Caps {
		if have[c] {
			return false
		}
	}
	return !contains(r.Excludes.Arches, goarch)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

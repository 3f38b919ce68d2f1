package oci

import (
	"bytes"
	"path"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultPath is the PATH given to containers whose image sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func setProcess(s *specs.Spec, in SpecInput, user ResolvedUser) error {
	args, err := commandLine(in.Config.GetCommand(), in.Config.GetArgs(), in.Image.Config.Entrypoint, in.Image.Config.Cmd)
	if err != nil {
		return err
	}
	s.Process.Args = args
	s.Process.Terminal = in.Config.GetTty()
	cwd, err := workingDir(in.Config.GetWorkingDir(), in.Image.Config.WorkingDir)
	if err != nil {
		return err
	}
	s.Process.Cwd = cwd
	hostname := in.Sandbox.Hostname
	if !in.Sandbox.HostNetwork {
		s.Hostname = hostname
	}
	s.Process.Env, err = mergeEnv(in.Image.Config.Env, in.Config.GetEnvs(), hostname, user.Home)
	return err
}

// commandLine applies the kubelet's rules: command replaces the image's
// Entrypoint and drops its Cmd; args replace Cmd.
func commandLine(command, args, entrypoint, cmd []string) ([]string, error) {
	var out []string
	switch {
	case len(command) > 0:
		out = append(append(out, command...), args...)
	case len(args) > 0:
		out = append(append(out, entrypoint...), args...)
	default:
		out = append(append(out, entrypoint...), cmd...)
	}
	if len(out) == 0 || out[0] == "" {
		return nil, invalidf("no command specified: the config has no command and the image no entrypoint or cmd")
	}
	return out, nil
}

func workingDir(cri, image string) (string, error) {
	dir := cri
	if dir == "" {
		dir = image
	}
	if dir == "" {
		return "/", nil
	}
	if !path.IsAbs(dir) {
		return "", invalidf("working directory %q is not absolute", dir)
	}
	return path.Clean(dir), nil
}

// mergeEnv starts from the image's environment; CRI variables override by
// key, keeping the first position of the key. PATH, HOSTNAME and HOME get
// defaults when neither side sets them.
func mergeEnv(image []string, cri []*runtime.KeyValue, hostname, home string) ([]string, error) {
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, e := range image {
		k, v, _ := strings.Cut(e, "=")
		if k == "" {
			continue
		}
		set(k, v)
	}
	for _, kv := range cri {
		if kv.GetKey() == "" {
			return nil, invalidf("environment variable with an empty name")
		}
		if strings.ContainsAny(kv.GetKey(), "=\x00") || bytes.IndexByte(kv.GetValue(), 0) >= 0 {
			return nil, invalidf("environment variable %q contains '=' or NUL", kv.GetKey())
		}
		set(kv.GetKey(), string(kv.GetValue()))
	}
	defaults := [][2]string{{"PATH", defaultPath}, {"HOSTNAME", hostname}, {"HOME", home}}
	for _, d := range defaults {
		if _, ok := vals[d[0]]; !ok && d[1] != "" {
			set(d[0], d[1])
		}
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

// stopSignal picks the CRI config's signal, else the image's, else SIGTERM.
func stopSignal(cri runtime.Signal, image string) (syscall.Signal, error) {
	if cri != runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		if sig, ok := signalByName(strings.TrimPrefix(cri.String(), "SIGNAL_")); ok {
			return sig, nil
		}
		return 0, invalidf("unknown stop signal %v", cri)
	}
	if sig, ok := signalByName(image); ok {
		return sig, nil
	}
	// An absent or odd image StopSignal must not make the container unusable.
	return syscall.SIGTERM, nil
}

// signalByName accepts "SIGTERM", "TERM", "15", "SIGRTMIN+3", "RTMAX-1"
// and the CRI enum's "SIGRTMINPLUS3" / "SIGRTMAXMINUS1".
func signalByName(name string) (syscall.Signal, bool) {
	name = strings.ToUpper(strings.TrimSpace(name))
	if name == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(name); err == nil {
		return syscall.Signal(n), n > 0 && n <= sigRTMax
	}
	name = strings.TrimPrefix(name, "SIG")
	name = strings.NewReplacer("PLUS", "+", "MINUS", "-").Replace(name)
	for _, rt := range []struct {
		prefix string
		base   int
	}{{"RTMIN", sigRTMin}, {"RTMAX", sigRTMax}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		off := 0
		if rest != "" {
			n, err := strconv.Atoi(rest)
			if err != nil || (rest[0] != '+' && rest[0] != '-') {
				return 0, false
			}
			off = n
		}
		sig := rt.base + off
		return syscall.Signal(sig), sig >= sigRTMin && sig <= sigRTMax
	}
	sig, ok := signalNames[name]
	return sig, ok
}

// Linux real-time signal range as user space sees it (glibc reserves 32, 33).
const (
	sigRTMin = 34
	sigRTMax = 64
)

var signalNames = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "ILL": syscall.SIGILL,
	"TRAP": syscall.SIGTRAP, "ABRT": syscall.SIGABRT, "IOT": syscall.SIGABRT, "BUS": syscall.SIGBUS,
	"FPE": syscall.SIGFPE, "KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "SEGV": syscall.SIGSEGV,
	"USR2": syscall.SIGUSR2, "PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM,
	"STKFLT": syscall.SIGSTKFLT, "CHLD": syscall.SIGCHLD, "CLD": syscall.SIGCHLD, "CONT": syscall.SIGCONT,
	"STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU,
	"URG": syscall.SIGURG, "XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ, "VTALRM": syscall.SIGVTALRM,
	"PROF": syscall.SIGPROF, "WINCH": syscall.SIGWINCH, "IO": syscall.SIGIO, "POLL": syscall.SIGIO,
	"PWR": syscall.SIGPWR, "SYS": syscall.SIGSYS,
}

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/fault"
)

// metadataKey identifies a pod request as the kubelet retries it.
func metadataKey(md *runtime.PodSandboxMetadata) string {
	return md.GetName() + "_" + md.GetNamespace() + "_" + md.GetUid() + "_" + strconv.FormatUint(uint64(md.GetAttempt()), 10)
}

// Run makes a pod and returns it READY. A second call with the same
// metadata (name, namespace, uid, attempt) returns the first call's pod,
// waiting for it if it is still being made. On failure everything made for
// the pod is undone.
func (m *Manager) Run(ctx context.Context, cfg *runtime.PodSandboxConfig, handler string) (*Sandbox, error) {
	if err := m.validate(cfg, handler); err != nil {
		return nil, err
	}
	// A retry of a call that made the pod gets it (package reservation
	// says why).
	r, err := m.names.Reserve(ctx, metadataKey(cfg.GetMetadata()))
	if err != nil {
		return nil, err
	}
	if !r.Held {
		return m.Get(r.ID)
	}
	sb, err := m.create(context.WithoutCancel(ctx), r.ID, cfg, handler)
	if err == nil {
		m.mu.Lock()
		m.pods[sb.ID] = sb.clone()
		m.mu.Unlock()
	}
	r.Done(err)
	if err != nil {
		return nil, err
	}
	return sb, nil
}

// create makes every part of the pod in order, and undoes them all on
// failure. A record marked incomplete is written first, so that a daemon
// that dies midway cleans the pod up at its next start.
func (m *Manager) create(ctx context.Context, id string, cfg *runtime.PodSandboxConfig, handler string) (*Sandbox, error) {
	start := time.Now()
	nso := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	sb := &Sandbox{
		ID:             id,
		Config:         cfg,
		RuntimeHandler: handler,
		CreatedAt:      start,
		State:          StateNotReady,
		HostNetwork:    nso.GetNetwork() == runtime.NamespaceMode_NODE,
		HostIPC:        nso.GetIpc() == runtime.NamespaceMode_NODE,
		HostPID:        nso.GetPid() == runtime.NamespaceMode_NODE,
		Hostname:       cfg.GetHostname(),
	}
	if sb.HostNetwork {
		var err error
		if sb.Hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("read host name: %w", err)
		}
	} else if sb.Hostname == "" {
		sb.Hostname = truncate(cfg.GetMetadata().GetName(), 63)
	}
	if err := m.writeRecord(sb, true); err != nil {
		return nil, err
	}
	err := m.setup(ctx, sb)
	if err == nil && m.opts.BeforeListed != nil {
		err = m.opts.BeforeListed(ctx, sb.clone())
	}
	if err != nil {
		if terr := m.teardown(ctx, sb, true); terr != nil {
			klog.ErrorS(terr, "Cleaning up after a failed RunPodSandbox", "pod", id)
		}
		return nil, err
	}
	klog.InfoS("Pod sandbox ready", "pod", id, "name", cfg.GetMetadata().GetName(), "namespace", cfg.GetMetadata().GetNamespace(), "ips", sb.IPs, "took", time.Since(start))
	return sb, nil
}

// setup runs the steps that make up a pod, then records it READY.
func (m *Manager) setup(ctx context.Context, sb *Sandbox) error {
	cfg := sb.Config
	steps := []struct {
		name string
		fn   func(context.Context, *Sandbox) error
	}{
		{"cgroup", m.setupCgroup},
		{"namespaces", m.setupNamespaces},
		{"shm", m.setupShm},
		{"network", m.setupNetwork},
		{"files", m.setupFiles},
		{"sysctls", m.setupSysctls},
		{"infra", m.setupInfra},
	}
	for _, st := range steps {
		t := time.Now()
		if err := st.fn(ctx, sb); err != nil {
			return fmt.Errorf("run pod %s (%s/%s): %s: %w", sb.ID, cfg.GetMetadata().GetNamespace(), cfg.GetMetadata().GetName(), st.name, err)
		}
		klog.V(4).InfoS("Pod sandbox step done", "pod", sb.ID, "step", st.name, "took", time.Since(t))
		fault.Crash("sandbox.run.after-" + st.name)
	}
	sb.State = StateReady
	fault.Crash("sandbox.run.before-record")
	return m.writeRecord(sb, false)
}

func (m *Manager) setupCgroup(_ context.Context, sb *Sandbox) error {
	cg, err := podCgroup(m.opts.CgroupDriver, sb.Config.GetLinux().GetCgroupParent(), sb.ID)
	if err != nil {
		return err
	}
	fsPath := cgroups.RelPath(cg)
	created := !cgroups.Exists(fsPath)
	// A pod cgroup the kubelet made is the kubelet's: it has set the pod's
	// limits, overhead included. Only one made here gets them from us.
	var limits *runtime.LinuxPodSandboxConfig
	if created {
		limits = sb.Config.GetLinux()
	}
	if err := createCgroup(fsPath, limits); err != nil {
		if created {
			err = errors.Join(err, cgroups.Delete(fsPath))
		}
		return err
	}
	sb.CgroupParent, sb.CgroupCreated = cg, created
	return nil
}

func (m *Manager) setupNamespaces(_ context.Context, sb *Sandbox) error {
	var pins []nsPin
	if !sb.HostNetwork {
		pins = append(pins, nsPin{nsNet, m.pinPath(nsNet, sb.ID)}, nsPin{nsUTS, m.pinPath(nsUTS, sb.ID)})
	}
	if !sb.HostIPC {
		pins = append(pins, nsPin{nsIPC, m.pinPath(nsIPC, sb.ID)})
	}
	uid, gid, userns, err := userNamespaceMappings(sb.Config)
	if err != nil {
		return err
	}
	if userns {
		userPin := nsPin{nsUser, m.pinPath(nsUser, sb.ID)}
		var infra func(*usernsClone) (int, error)
		if sharesPID(sb) {
			infra = func(u *usernsClone) (int, error) { return startInfra(m.opts.InfraBinary, sb.ID, nil, u) }
		}
		pid, err := createUserNamespaces(append([]nsPin{userPin}, pins...), usernsClone{uid: uid, gid: gid}, sb.Hostname, infra)
		if pid != 0 {
			m.setInfra(sb, pid) // set first: teardown stops it even if pinning failed
		}
		if err != nil {
			return err
		}
		sb.UserNSPath = userPin.path
	} else if err := createNamespaces(pins, sb.Hostname); err != nil {
		return err
	}
	for _, p := range pins {
		switch p.kind {
		case nsNet:
			sb.NetNSPath = p.path
		case nsIPC:
			sb.IPCNSPath = p.path
		case nsUTS:
			sb.UTSNSPath = p.path
		}
	}
	return nil
}

func (m *Manager) setupShm(_ context.Context, sb *Sandbox) error {
	if sb.HostIPC {
		return nil
	}
	p := m.shmPath(sb.ID)
	sb.ShmPath = p // set first: teardown removes the dir even if the mount failed
	if err := mountShm(p, m.opts.ShmSize); err != nil {
		return err
	}
	return ownByPodRoot(sb, p)
}

func (m *Manager) setupNetwork(ctx context.Context, sb *Sandbox) error {
	if sb.HostNetwork {
		return nil
	}
	if m.opts.Network == nil {
		return fmt.Errorf("%w: no pod network is configured; only host-network pods can run", ErrInvalid)
	}
	pod, err := m.cniPod(sb)
	if err != nil {
		return err
	}
	res, err := m.opts.Network.Attach(ctx, pod)
	if err != nil {
		sb.networkDetached = true // a failed Attach has run DEL itself
		return err
	}
	sb.IPs = res.IPs
	return nil
}

func (m *Manager) cniPod(sb *Sandbox) (cni.Pod, error) {
	cfg := sb.Config
	pms, err := portMappings(cfg.GetPortMappings())
	if err != nil {
		return cni.Pod{}, err
	}
	bw, err := bandwidth(cfg.GetAnnotations())
	if err != nil {
		return cni.Pod{}, err
	}
	pod := cni.Pod{
		ID:           sb.ID,
		Name:         cfg.GetMetadata().GetName(),
		Namespace:    cfg.GetMetadata().GetNamespace(),
		UID:          cfg.GetMetadata().GetUid(),
		NetNS:        sb.NetNSPath,
		PortMappings: pms,
		Bandwidth:    bw,
	}
	if dns := cfg.GetDnsConfig(); dns != nil {
		pod.DNS = &cni.DNS{Servers: dns.GetServers(), Searches: dns.GetSearches(), Options: dns.GetOptions()}
	}
	return pod, nil
}

func (m *Manager) setupFiles(_ context.Context, sb *Sandbox) error {
	dir := m.stateDir(sb.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create pod state dir: %w", err)
	}
	resolv, err := resolvConf(sb.Config.GetDnsConfig(), m.opts.HostResolvConf)
	if err != nil {
		return err
	}
	hosts, err := hostsFile(sb.HostNetwork, m.opts.HostHosts, sb.Hostname, sb.IPs)
	if err != nil {
		return err
	}
	files := []struct {
		path *string
		name string
		data []byte
	}{
		{&sb.HostnamePath, "hostname", []byte(sb.Hostname + "\n")},
		{&sb.ResolvConfPath, "resolv.conf", resolv},
		{&sb.HostsPath, "hosts", hosts},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := writePodFile(p, f.data); err != nil {
			return err
		}
		*f.path = p
		if err := ownByPodRoot(sb, p); err != nil {
			return err
		}
	}
	return nil
}

// ownByPodRoot gives a file the pod makes for its containers to the host
// IDs of root in the pod's user namespace, so that it is root's inside
// (unowned files show as nobody there and root could not write them).
func ownByPodRoot(sb *Sandbox, p string) error {
	uid, gid, ok := sb.UserNamespace()
	if !ok {
		return nil
	}
	if err := os.Chown(p, int(uid.HostID), int(gid.HostID)); err != nil {
		return fmt.Errorf("give %s to the pod's root: %w", p, err)
	}
	return nil
}

func (m *Manager) setupSysctls(_ context.Context, sb *Sandbox) error {
	if sb.UserNSPath != "" {
		// The kernel lets only root of the owning user namespace write the
		// sysctls of a namespace a child user namespace owns, and a thread
		// of the daemon cannot join one. Every container applies the pod's
		// sysctls from inside (SandboxInfo.Sysctls), so they hold wherever
		// a process of the pod runs.
		return nil
	}
	return applySysctls(sb.Config.GetLinux().GetSysctls(), sb.NetNSPath, sb.IPCNSPath)
}

// sharesPID tells whether the pod's containers share one PID namespace,
// which its infra process holds.
func sharesPID(sb *Sandbox) bool {
	return sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtime.NamespaceMode_POD
}

func (m *Manager) setInfra(sb *Sandbox, pid int) {
	sb.InfraPID = pid
	sb.PIDNSPath = "/proc/" + strconv.Itoa(pid) + "/ns/pid"
}

// setupInfra starts the infra process when the pod shares one PID
// namespace among its containers.
func (m *Manager) setupInfra(_ context.Context, sb *Sandbox) error {
	if !sharesPID(sb) {
		return nil
	}
	// In a pod with a user namespace, the infra process made the
	// namespaces (setupNamespaces).
	if sb.InfraPID == 0 {
		pid, err := startInfra(m.opts.InfraBinary, sb.ID, map[nsKind]string{nsNet: sb.NetNSPath, nsIPC: sb.IPCNSPath, nsUTS: sb.UTSNSPath}, nil)
		if err != nil {
			return err
		}
		m.setInfra(sb, pid)
	}
	if err := cgroups.AddProc(cgroups.RelPath(sb.CgroupParent), sb.InfraPID); err != nil {
		return fmt.Errorf("move infra process into the pod cgroup: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

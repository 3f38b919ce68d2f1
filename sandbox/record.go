package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/atomicfile"
)

// record is the on-disk form of a Sandbox. The CRI config is kept in its
// protobuf encoding, which stays readable as the API grows.
type record struct {
	Version        int       `json:"version"`
	Incomplete     bool      `json:"incomplete,omitempty"`
	ID             string    `json:"id"`
	Config         []byte    `json:"config"`
	RuntimeHandler string    `json:"runtimeHandler"`
	CreatedAt      time.Time `json:"createdAt"`
	Ready          bool      `json:"ready"`
	NetNSPath      string    `json:"netns,omitempty"`
	IPCNSPath      string    `json:"ipcns,omitempty"`
	UTSNSPath      string    `json:"utsns,omitempty"`
	PIDNSPath      string    `json:"pidns,omitempty"`
	UserNSPath     string    `json:"userns,omitempty"`
	InfraPID       int       `json:"infraPid,omitempty"`
	HostNetwork    bool      `json:"hostNetwork,omitempty"`
	HostIPC        bool      `json:"hostIPC,omitempty"`
	HostPID        bool      `json:"hostPID,omitempty"`
	Hostname       string    `json:"hostname"`
	HostnamePath   string    `json:"hostnamePath,omitempty"`
	ResolvConfPath string    `json:"resolvConfPath,omitempty"`
	HostsPath      string    `json:"hostsPath,omitempty"`
	ShmPath        string    `json:"shmPath,omitempty"`
	CgroupParent   string    `json:"cgroupParent,omitempty"`
	CgroupCreated  bool      `json:"cgroupCreated,omitempty"`
	IPs            []string  `json:"ips,omitempty"`
	// NetworkDetached: CNI DEL has run (see Sandbox.networkDetached).
	NetworkDetached bool `json:"networkDetached,omitempty"`
}

const recordVersion = 1

// legacyRecordName is the record's name in <root>/pods/<id>/, where
// records were before they were flat; start-up moves them.
const legacyRecordName = "sandbox.json"

func (m *Manager) writeRecord(sb *Sandbox, incomplete bool) error {
	cfg, err := proto.Marshal(sb.Config)
	if err != nil {
		return fmt.Errorf("encode pod %s config: %w", sb.ID, err)
	}
	r := record{
		Version: recordVersion, Incomplete: incomplete, ID: sb.ID, Config: cfg,
		RuntimeHandler: sb.RuntimeHandler, CreatedAt: sb.CreatedAt, Ready: sb.State == StateReady,
		NetNSPath: sb.NetNSPath, IPCNSPath: sb.IPCNSPath, UTSNSPath: sb.UTSNSPath,
		PIDNSPath: sb.PIDNSPath, UserNSPath: sb.UserNSPath, InfraPID: sb.InfraPID,
		HostNetwork: sb.HostNetwork, HostIPC: sb.HostIPC, HostPID: sb.HostPID,
		Hostname: sb.Hostname, HostnamePath: sb.HostnamePath, ResolvConfPath: sb.ResolvConfPath,
		HostsPath: sb.HostsPath, ShmPath: sb.ShmPath,
		CgroupParent: sb.CgroupParent, CgroupCreated: sb.CgroupCreated, IPs: sb.IPs,
		NetworkDetached: sb.networkDetached,
	}
	if err := atomicfile.WriteJSON(m.recordPath(sb.ID), r); err != nil {
		return fmt.Errorf("write pod %s record: %w", sb.ID, err)
	}
	return nil
}

func (r *record) sandbox() (*Sandbox, error) {
	cfg := &runtime.PodSandboxConfig{}
	if err := proto.Unmarshal(r.Config, cfg); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	sb := &Sandbox{
		ID: r.ID, Config: cfg, RuntimeHandler: r.RuntimeHandler, CreatedAt: r.CreatedAt,
		NetNSPath: r.NetNSPath, IPCNSPath: r.IPCNSPath, UTSNSPath: r.UTSNSPath,
		PIDNSPath: r.PIDNSPath, UserNSPath: r.UserNSPath, InfraPID: r.InfraPID,
		HostNetwork: r.HostNetwork, HostIPC: r.HostIPC, HostPID: r.HostPID,
		Hostname: r.Hostname, HostnamePath: r.HostnamePath, ResolvConfPath: r.ResolvConfPath,
		HostsPath: r.HostsPath, ShmPath: r.ShmPath,
		CgroupParent: r.CgroupParent, CgroupCreated: r.CgroupCreated, IPs: r.IPs,
		networkDetached: r.NetworkDetached,
	}
	if r.Ready {
		sb.State = StateReady
	}
	return sb, nil
}

// load reads every pod record. A pod whose creation a crash interrupted is
// torn down; a READY pod whose namespaces or infra process are gone (the
// node rebooted) is NOTREADY.
func (m *Manager) load(ctx context.Context) error {
	ids, orphans, err := atomicfile.PrepareRecords(m.podsDir(), legacyRecordName)
	if err != nil {
		return fmt.Errorf("pod records: %w", err)
	}
	for _, id := range orphans {
		klog.InfoS("Removing pod dir without a record", "pod", id)
		os.RemoveAll(filepath.Join(m.podsDir(), id))
	}
	for _, id := range ids {
		var r record
		if err := atomicfile.ReadJSON(m.recordPath(id), &r); err != nil {
			klog.ErrorS(err, "Skipping unreadable pod record", "pod", id)
			continue
		}
		sb, err := r.sandbox()
		if err != nil || r.ID != id {
			klog.ErrorS(err, "Skipping unreadable pod record", "pod", id)
			continue
		}
		if r.Incomplete {
			m.fillInterrupted(sb)
			klog.InfoS("Cleaning up pod whose creation was interrupted", "pod", id, "netns", sb.NetNSPath, "cgroup", sb.CgroupParent)
			if err := m.teardown(ctx, sb, true); err != nil {
				klog.ErrorS(err, "Cleaning up interrupted pod", "pod", id)
			}
			continue
		}
		if sb.State == StateReady && !m.intact(sb) {
			klog.InfoS("Pod lost its namespaces or infra process; marking it NOTREADY", "pod", id)
			sb.State = StateNotReady
			if err := m.writeRecord(sb, false); err != nil {
				klog.ErrorS(err, "Updating pod record", "pod", id)
			}
		}
		m.pods[id] = sb
		m.names.Set(metadataKey(sb.Metadata()), id)
	}
	return nil
}

// fillInterrupted sets, in the record of a pod whose creation a crash
// interrupted, the paths of what the steps after the first record write
// may have made: that record was written before any step ran, so it names
// none of them. Each path is the one create would have used; teardown of a
// path that was never made is a no-op.
func (m *Manager) fillInterrupted(sb *Sandbox) {
	if !sb.HostNetwork {
		sb.NetNSPath, sb.UTSNSPath = m.pinPath(nsNet, sb.ID), m.pinPath(nsUTS, sb.ID)
	}
	if !sb.HostIPC {
		sb.IPCNSPath, sb.ShmPath = m.pinPath(nsIPC, sb.ID), m.shmPath(sb.ID)
	}
	if _, _, userns, _ := userNamespaceMappings(sb.Config); userns {
		sb.UserNSPath = m.pinPath(nsUser, sb.ID)
	}
	if sb.InfraPID == 0 && sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtime.NamespaceMode_POD {
		sb.InfraPID = findInfra(sb.ID)
	}
	// Only a cgroup named after the pod is the daemon's own; the kubelet's
	// pod cgroup (cgroup_parent) is the kubelet's to remove.
	if sb.CgroupParent == "" && sb.Config.GetLinux().GetCgroupParent() == "" {
		if cg, err := podCgroup(m.opts.CgroupDriver, "", sb.ID); err == nil {
			sb.CgroupParent, sb.CgroupCreated = cg, true
		}
	}
}

// intact tells whether the namespaces and infra process of a pod survive.
func (m *Manager) intact(sb *Sandbox) bool {
	for _, p := range []string{sb.NetNSPath, sb.IPCNSPath, sb.UTSNSPath, sb.UserNSPath} {
		if p != "" && !isPinned(p) {
			return false
		}
	}
	return sb.InfraPID == 0 || infraAlive(sb.InfraPID, sb.ID)
}

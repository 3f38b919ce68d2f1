package sandbox

import (
	"path/filepath"
	"testing"

	"github.com/criserver/criserver/cgroups"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestFillInterrupted: the record of a pod whose creation a crash cut
// short names nothing the steps made; start-up derives what they would
// have made, and leaves alone what is not the daemon's.
func TestFillInterrupted(t *testing.T) {
	state := t.TempDir()
	m := &Manager{opts: Options{State: state, CgroupDriver: cgroups.Cgroupfs}}
	const id = "0123abcd"
	tests := []struct {
		name                string
		hostNet, hostIPC    bool
		cgroupParent        string
		wantNet, wantIPC    string
		wantShm, wantCgroup string
		wantCgroupCreated   bool
	}{
		{
			name:    "pod namespaces, own cgroup",
			wantNet: filepath.Join(state, "netns", id), wantIPC: filepath.Join(state, "ipcns", id),
			wantShm: filepath.Join(state, "pods", id, "shm"), wantCgroup: "/criserver/pod" + id, wantCgroupCreated: true,
		},
		{
			name: "host namespaces, kubelet cgroup", hostNet: true, hostIPC: true, cgroupParent: "/kubepods/pod1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode := func(host bool) runtime.NamespaceMode {
				if host {
					return runtime.NamespaceMode_NODE
				}
				return runtime.NamespaceMode_POD
			}
			sb := &Sandbox{ID: id, HostNetwork: tt.hostNet, HostIPC: tt.hostIPC, Config: &runtime.PodSandboxConfig{
				Linux: &runtime.LinuxPodSandboxConfig{CgroupParent: tt.cgroupParent, SecurityContext: &runtime.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtime.NamespaceOption{Network: mode(tt.hostNet), Ipc: mode(tt.hostIPC)},
				}},
			}}
			m.fillInterrupted(sb)
			if sb.NetNSPath != tt.wantNet || sb.IPCNSPath != tt.wantIPC || sb.ShmPath != tt.wantShm {
				t.Errorf("paths: net %q ipc %q shm %q; want %q %q %q", sb.NetNSPath, sb.IPCNSPath, sb.ShmPath, tt.wantNet, tt.wantIPC, tt.wantShm)
			}
			if sb.CgroupParent != tt.wantCgroup || sb.CgroupCreated != tt.wantCgroupCreated {
				t.Errorf("cgroup %q created %v; want %q %v", sb.CgroupParent, sb.CgroupCreated, tt.wantCgroup, tt.wantCgroupCreated)
			}
			if sb.InfraPID != 0 {
				t.Errorf("infra pid %d for a pod without one", sb.InfraPID)
			}
		})
	}
}

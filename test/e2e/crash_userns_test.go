package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/sandbox"
	"github.com/criserver/criserver/test/e2e/framework"
)

// zombie tells whether pid has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // gone
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// TestCrashUserNamespaceAndImageVolume: the daemon killed while it makes a
// pod with a user namespace (with and without a shared PID namespace, whose
// infra process then makes the namespaces) or a container with an image
// volume leaves, after a restart, nothing of them behind.
func TestCrashUserNamespaceAndImageVolume(t *testing.T) {
	e := newUsernsEnv(t)
	ref, _ := e.pushVolumeImage(t)
	newPod := func(t *testing.T, e *ctrEnv) (string, string) { return "", "" }
	usernsPodCall := func(pid runtime.NamespaceMode) func(e *ctrEnv, _, _ string) error {
		return func(e *ctrEnv, _, _ string) error {
			cf := e.d.PodConfig(t, "crashuserns")
			mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: usernsHostID, Length: 65536}}
			cf.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{
				Pid:           pid,
				UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping},
			}
			_, err := e.d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: cf})
			return err
		}
	}
	imageVolumeCall := func(e *ctrEnv, _, _ string) error {
		cfg := e.config(fmt.Sprintf("c%d", time.Now().UnixNano()), "exec sleep 600")
		cfg.Mounts = []*runtime.Mount{imageMount("/vol", ref, "data")}
		_, err := e.d.Runtime.CreateContainer(framework.Ctx(t), &runtime.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCf})
		return err
	}
	for _, tc := range []struct {
		name string
		crashCase
	}{
		{"userns", crashCase{"sandbox.run.after-namespaces", newPod, usernsPodCall(runtime.NamespaceMode_CONTAINER)}},
		{"userns-shared-pid", crashCase{"sandbox.run.after-namespaces", newPod, usernsPodCall(runtime.NamespaceMode_POD)}},
		{"userns-shared-pid", crashCase{"sandbox.run.after-infra", newPod, usernsPodCall(runtime.NamespaceMode_POD)}},
		{"image-volume", crashCase{"container.create.after-rootfs", newPod, imageVolumeCall}},
		{"image-volume", crashCase{"container.create.after-conmon", newPod, imageVolumeCall}},
	} {
		t.Run(tc.name+"/"+tc.point, func(t *testing.T) {
			pod, ctr := tc.prepare(t, e)
			infraBefore := framework.ProcessesNamed(sandbox.InfraArgv0)
			restartCrashing(t, e.d, tc.point)
			expectCrash(t, e.d, tc.point, tc.call(e, pod, ctr))
			ids := slices.DeleteFunc(crashObjectIDs(e.d), func(id string) bool { return id == e.pod })
			crashCheckComplete(t, e, ids)
			crashCleanupExcept(t, e.d, e.pod)
			assertNoLeaks(t, e.d, ids...)
			// What the half-made object's ID no longer names: pins of
			// other pods, mounts of containers, infra processes.
			if pins, _ := filepath.Glob(filepath.Join(e.d.State, "*ns", "*")); slices.ContainsFunc(pins, func(p string) bool { return filepath.Base(p) != e.pod }) {
				t.Errorf("namespace pins left: %v", pins)
			}
			if mounts, _ := framework.MountsUnder(filepath.Join(e.d.Root, "overlay2")); len(mounts) > 0 {
				t.Errorf("mounts left: %v", mounts)
			}
			for _, pid := range framework.ProcessesNamed(sandbox.InfraArgv0) {
				// Killed ones stay zombies until this host's init reaps them.
				if !slices.Contains(infraBefore, pid) && !zombie(pid) {
					t.Errorf("infra process %d left", pid)
				}
			}
		})
	}
}

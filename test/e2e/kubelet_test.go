package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// kubeletNode is the node name the standalone kubelet uses; static pods
// are named <manifest name>-<node>.
const kubeletNode = "criserver-e2e"

// TestKubeletStandaloneUserNamespacesImageVolume runs a real kubelet
// (v1.37, the one hack/node-e2e/build.sh builds) without an API server
// against a daemon of its own, with two static pods: one with
// `hostUsers: false`, one with an image volume. It checks both through the
// CRI and from the host, then that the kubelet's removal of the pods and
// the test's removal of the sandboxes leave nothing behind.
func TestKubeletStandaloneUserNamespacesImageVolume(t *testing.T) {
	framework.Require(t)
	kubelet := kubeletBinary(t)

	reg := framework.StartRegistry(t)
	reg.Push(t, "busybox", "latest", framework.BusyboxImage(t))
	reg.Push(t, "volume", "v1", kubeletVolumeImage())
	busyboxRef, volRef := reg.Ref("busybox", "latest"), reg.Ref("volume", "v1")

	// runc: the handler behind "" must do user namespaces (Debian's crun
	// 1.8.1 reports no features).
	e := startLeakDaemon(t, framework.WithConfig("[runtime]\ndefault_handler = \"runc\"\n"))
	d := e.d
	requireUserNamespaces(t, d, "")
	ids := newIDSet(d)
	kubeletWarmUp(t, d, busyboxRef, volRef, ids)
	before := e.snapshot(t, ids)
	files := listTree(d.Root, d.State)

	k := startKubelet(t, kubelet, d, map[string]string{
		"userns.yaml": fmt.Sprintf(usernsPodManifest, busyboxRef),
		"imgvol.yaml": fmt.Sprintf(imageVolumePodManifest, busyboxRef, volRef),
	})
	usernsCtr := waitKubeletContainer(t, d, "sleep")
	volCtr := waitKubeletContainer(t, d, "reader")
	for _, c := range []*runtime.Container{usernsCtr, volCtr} {
		ids.add(c.PodSandboxId)
		ids.add(c.Id)
		ids.addVeths(t, c.PodSandboxId)
	}
	checkKubeletUserNamespacePod(t, d, usernsCtr)
	checkKubeletImageVolumePod(t, d, volCtr, volRef)
	k.checkAPI(t, "userns-"+kubeletNode, "imgvol-"+kubeletNode)

	// The kubelet stops the pods whose manifests are gone.
	k.removeManifests(t)
	for _, c := range []*runtime.Container{usernsCtr, volCtr} {
		waitSandboxNotReady(t, d, c.PodSandboxId)
	}
	k.stop(t)
	removeAllSandboxes(t, d)
	removeAllImages(t, d)
	if after := e.checkNoGrowth(t, ids, before); after.Files != before.Files {
		logNewFiles(t, d, files)
	}
	k.restore(t)
}

// kubeletVolumeImage is an image of data files only, mounted as a volume.
func kubeletVolumeImage() *framework.Image {
	img := &framework.Image{}
	img.AddLayer(framework.Dir("data", 0o755), framework.File("data/hello", "hello from the volume image\n", 0o644))
	return img
}

// kubeletBinary is $NODE_E2E_DIR/kubelet, or the one hack/node-e2e/build.sh
// builds (once per version, cached). The test is skipped, even in CI,
// when it can be neither found nor built; once it is there, what keeps the
// test from running fails it under CRISERVER_E2E_REQUIRED=1.
func kubeletBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("NODE_E2E_DIR")
	if dir == "" {
		cmd := exec.Command("bash", "../../hack/node-e2e/build.sh", "kubelet")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Skipf("no kubelet: hack/node-e2e/build.sh kubelet: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	bin := filepath.Join(dir, "kubelet")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no kubelet: %v", err)
	}
	return bin
}

// kubeletWarmUp runs, through the CRI, what the kubelet's pods will: a
// pod in a user namespace with an image volume, then removes it and the
// images, so that the directories the daemon makes on first use exist
// before the leak check counts.
func kubeletWarmUp(t *testing.T, d *framework.Daemon, busyboxRef, volRef string, ids *idSet) {
	t.Helper()
	ctx := framework.Ctx(t)
	for _, ref := range []string{busyboxRef, volRef} {
		if _, err := d.Image.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
	}
	cf := d.PodConfig(t, "warm")
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: 65536, Length: 65536}}
	cf.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{
		UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping},
	}
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cf})
	if err != nil {
		t.Fatalf("warm-up RunPodSandbox: %v", err)
	}
	ids.add(resp.PodSandboxId)
	cfg := framework.ContainerConfig(busyboxRef, "warm", "exec sleep 3600")
	cfg.Mounts = []*runtime.Mount{imageMount("/vol", volRef, "")}
	ctr, err := d.CreateStart(ctx, resp.PodSandboxId, cf, cfg)
	ids.add(ctr)
	if err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	// The test execs in the kubelet's container later.
	if r, err := d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"cat", "/vol/data/hello"}, Timeout: 10}); err != nil || r.ExitCode != 0 {
		t.Fatalf("warm-up exec: %v code %d %q", err, r.GetExitCode(), r.GetStderr())
	}
	if err := removePodContainer(t, d, resp.PodSandboxId, ctr); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	removeAllImages(t, d)
}

// The static pods. The kubelet pulls their images (IfNotPresent).
const (
	usernsPodManifest = `apiVersion: v1
kind: Pod
metadata:
  name: userns
  namespace: default
spec:
  hostUsers: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleep
    image: %s
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
`
	imageVolumePodManifest = `apiVersion: v1
kind: Pod
metadata:
  name: imgvol
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: reader
    image: %s
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    volumeMounts:
    - name: vol
      mountPath: /vol
  volumes:
  - name: vol
    image:
      reference: %s
      pullPolicy: IfNotPresent
`
)

// waitKubeletContainer waits for the kubelet's running container name.
func waitKubeletContainer(t *testing.T, d *framework.Daemon, name string) *runtime.Container {
	t.Helper()
	var found *runtime.Container
	framework.Poll(40*time.Second, func() bool {
		resp, err := d.Runtime.ListContainers(framework.Ctx(t), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{
			State:         &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING},
			LabelSelector: map[string]string{"io.kubernetes.container.name": name},
		}})
		if err == nil && len(resp.Containers) == 1 {
			found = resp.Containers[0]
		}
		return found != nil
	})
	if found == nil {
		t.Fatalf("the kubelet's container %s is not running after 40 s; daemon log:\n%s", name, d.Output())
	}
	return found
}

// checkKubeletUserNamespacePod: the kubelet asked for a user namespace of
// the pod's (mode POD, one mapping from 0 to a multiple of 65536 but not
// the identity), and the container's process runs as the mapped host uid.
func checkKubeletUserNamespacePod(t *testing.T, d *framework.Daemon, c *runtime.Container) {
	t.Helper()
	ps, err := d.Runtime.PodSandboxStatus(framework.Ctx(t), &runtime.PodSandboxStatusRequest{PodSandboxId: c.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}
	userns := ps.GetStatus().GetLinux().GetNamespaces().GetOptions().GetUsernsOptions()
	if userns.GetMode() != runtime.NamespaceMode_POD || len(userns.GetUids()) != 1 {
		t.Fatalf("PodSandboxStatus user namespace options %v, want mode POD with one mapping", userns)
	}
	m := userns.Uids[0]
	if m.ContainerId != 0 || m.HostId == 0 || m.HostId%65536 != 0 || m.Length != 65536 {
		t.Errorf("kubelet's uid mapping %v, want container 0 to a non-zero multiple of 65536, length 65536", m)
	}
	_, info := (&ctrEnv{d: d}).status(t, c.Id)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", info.Pid))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0 %d %d", m.HostId, m.Length)
	if got := strings.Join(strings.Fields(string(b)), " "); got != want {
		t.Errorf("container's uid_map %q, want %q", got, want)
	}
	if uid := procUID(t, info.Pid); uid != int(m.HostId) {
		t.Errorf("container process runs as host uid %d, want the mapped %d", uid, m.HostId)
	}
}

// procUID is the real uid of pid, as the host sees it.
func procUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "Uid:" {
			uid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return uid
		}
	}
	t.Fatalf("/proc/%d/status has no Uid line", pid)
	return -1
}

// checkKubeletImageVolumePod: the image's file is in the volume, the volume
// is read-only, and ContainerStatus reports it with the image's ID.
func checkKubeletImageVolumePod(t *testing.T, d *framework.Daemon, c *runtime.Container, volRef string) {
	t.Helper()
	ctx := framework.Ctx(t)
	r, err := d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: c.Id, Timeout: 10, Cmd: []string{"sh", "-c",
		`cat /vol/data/hello; if touch /vol/new 2>/dev/null; then echo WRITABLE; fi; grep " /vol " /proc/mounts`}})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("exec in the image volume pod: %v code %d %q", err, r.GetExitCode(), r.GetStderr())
	}
	out := string(r.Stdout)
	if !strings.Contains(out, "hello from the volume image") || strings.Contains(out, "WRITABLE") {
		t.Errorf("image volume: want the image's file and no write:\n%s", out)
	}
	readOnly := false
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == "/vol" {
			readOnly = strings.HasPrefix(f[3]+",", "ro,")
		}
	}
	if !readOnly {
		t.Errorf("/vol is not a read-only mount:\n%s", out)
	}
	img, err := d.Image.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: volRef}})
	if err != nil || img.Image == nil {
		t.Fatalf("ImageStatus %s (the kubelet pulled it): %v", volRef, err)
	}
	st, _ := (&ctrEnv{d: d}).status(t, c.Id)
	var got *runtime.Mount
	for _, m := range st.GetMounts() {
		if m.ContainerPath == "/vol" {
			got = m
		}
	}
	if got == nil || got.GetImage().GetImageRef() != img.Image.Id || !got.Readonly {
		t.Errorf("ContainerStatus mount /vol = %v, want read-only with image_ref %s", got, img.Image.Id)
	}
}

// waitSandboxNotReady waits for the kubelet to stop a pod.
func waitSandboxNotReady(t *testing.T, d *framework.Daemon, pod string) {
	t.Helper()
	if !framework.Poll(30*time.Second, func() bool {
		ps, err := d.Runtime.PodSandboxStatus(framework.Ctx(t), &runtime.PodSandboxStatusRequest{PodSandboxId: pod})
		return err == nil && ps.Status.State == runtime.PodSandboxState_SANDBOX_NOTREADY
	}) {
		t.Fatalf("the kubelet has not stopped pod %s 30 s after its manifest went", pod)
	}
}

// removeAllSandboxes removes every pod the daemon has, as the kubelet's
// garbage collection would later.
func removeAllSandboxes(t *testing.T, d *framework.Daemon) {
	t.Helper()
	ctx := framework.Ctx(t)
	resp, err := d.Runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Items {
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("RemovePodSandbox %s: %v", p.Id, err)
		}
	}
}

// runningKubelet is a kubelet process and the files it was given.
type runningKubelet struct {
	kubeletHost
	cmd       *exec.Cmd
	done      chan error
	manifests string
	logsDir   string // podLogsDir
	logPath   string
	api       kubeletAPI
}

// startKubelet runs bin in standalone mode (no API server) with the static
// pods of manifests (file name → YAML), a root directory, pod log
// directory and certificates of its own, its ports on 127.0.0.1 only,
// client-certificate authentication, and the feature gates named in gates
// enabled.
func startKubelet(t *testing.T, bin string, d *framework.Daemon, manifests map[string]string, gates ...string) *runningKubelet {
	t.Helper()
	dir := t.TempDir()
	// The pods' mapped root must get through to the kubelet's files
	// mounted into them (hosts file, volumes).
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	k := &runningKubelet{
		kubeletHost: kubeletHostState(t, filepath.Join(dir, "root")),
		manifests:   filepath.Join(dir, "manifests"),
		logsDir:     filepath.Join(dir, "pods"),
		logPath:     filepath.Join(dir, "kubelet.log"),
	}
	for _, p := range []string{k.manifests, k.logsDir} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, yaml := range manifests {
		if err := os.WriteFile(filepath.Join(k.manifests, name), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if k.api, err = newKubeletAPI(dir, freePort(t)); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(conf, []byte(k.config(d, freePort(t), gates)), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(k.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	k.cmd = exec.Command(bin, "--config="+conf, "--root-dir="+k.root, "--hostname-override="+kubeletNode, "--v=2")
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start kubelet: %v", err)
	}
	k.done = make(chan error, 1)
	go func() { k.done <- k.cmd.Wait() }()
	// A failed test stops it too; then its pods go with the daemon's
	// cleanup, registered before.
	t.Cleanup(func() {
		if k.cmd.ProcessState == nil {
			k.stop(t)
		}
		removeContainerLogLinks(t, k.logsDir)
		if t.Failed() {
			t.Logf("kubelet log tail:\n%s", tailFile(k.logPath, 40))
		}
	})
	return k
}

// config is the kubelet's KubeletConfiguration. cgroupsPerQOS off keeps
// the kubelet's own cgroups (kubepods) off the host: the pods go where
// the daemon puts pods without a cgroup parent. Eviction and image garbage
// collection are off: on a shared machine's disk they would remove what
// the test looks at. makeIPTablesUtilChains off: the kubelet leaves the
// host's iptables alone (its canary chains would outlive it). No API
// server means no webhook to authorize with: any caller the client CA
// vouches for may do anything (AlwaysAllow), which is acceptable for a
// kubelet bound to 127.0.0.1 for one test.
func (k *runningKubelet) config(d *framework.Daemon, healthzPort int, gates []string) string {
	endpoint := "unix://" + d.Socket
	featureGates := ""
	if len(gates) > 0 {
		featureGates = "featureGates:\n"
		for _, g := range gates {
			featureGates += "  " + g + ": true\n"
		}
	}
	return featureGates + fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
containerRuntimeEndpoint: %[1]s
imageServiceEndpoint: %[1]s
staticPodPath: %[2]s
fileCheckFrequency: 1s
syncFrequency: 5s
podLogsDir: %[3]s
address: 127.0.0.1
port: %[4]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[5]d
tlsCertFile: %[6]s
tlsPrivateKeyFile: %[7]s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: %[8]s
authorization:
  mode: AlwaysAllow
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
makeIPTablesUtilChains: false
`, endpoint, k.manifests, k.logsDir, k.api.port, healthzPort, k.api.serverCert, k.api.serverKey, k.api.caFile)
}

// removeManifests removes every static pod.
func (k *runningKubelet) removeManifests(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(k.manifests)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(k.manifests, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// stop ends the kubelet with SIGTERM, then SIGKILL.
func (k *runningKubelet) stop(t *testing.T) {
	t.Helper()
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
}

// removeContainerLogLinks removes the links the kubelet keeps in
// /var/log/containers (a fixed path) to its containers' logs under
// logsDir. The kubelet removes a link with its container; this one stopped
// before it removed them.
func removeContainerLogLinks(t *testing.T, logsDir string) {
	t.Helper()
	const linkDir = "/var/log/containers"
	ents, _ := os.ReadDir(linkDir)
	for _, e := range ents {
		p := filepath.Join(linkDir, e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, logsDir+"/") {
			if err := os.Remove(p); err != nil {
				t.Errorf("remove the kubelet's log link: %v", err)
			}
		}
	}
}

// tailFile is the last lines of a file.
func tailFile(path string, lines int) string {
	b, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/cni"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// testNetwork sets up a CNI bridge network private to the test.
func testNetwork(t *testing.T) *cni.Manager {
	t.Helper()
	m, _ := testNetworkWithIPAM(t)
	return m
}

// testNetworkWithIPAM also returns host-local's data dir.
func testNetworkWithIPAM(t *testing.T) (*cni.Manager, string) {
	t.Helper()
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			t.Skipf("CNI plugin %s missing", p)
		}
	}
	dir := t.TempDir()
	conf := `{"cniVersion":"1.0.0","name":"sbtest","plugins":[
 {"type":"bridge","bridge":"crisbt0","isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","dataDir":"` + filepath.Join(dir, "ipam") + `","ranges":[[{"subnet":"10.231.7.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}`
	if err := os.WriteFile(filepath.Join(dir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", "crisbt0").Run() })
	m, err := cni.NewManager(cni.Config{ConfDir: dir, BinDirs: []string{"/usr/lib/cni"}, CacheDir: filepath.Join(dir, "cache"), DefaultSubnet: "10.231.7.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	return m, filepath.Join(dir, "ipam")
}

func newTestManager(t *testing.T, nw Network) *Manager {
	t.Helper()
	root := t.TempDir()
	m, err := New(context.Background(), Options{Root: filepath.Join(root, "root"), State: filepath.Join(root, "state"), Network: nw})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func podConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: "uid-" + name},
		Hostname: name + "-host",
		Labels:   map[string]string{"app": name},
		DnsConfig: &runtime.DNSConfig{
			Servers: []string{"10.96.0.10"}, Searches: []string{"ns.svc.cluster.local"}, Options: []string{"ndots:5"},
		},
		Linux: &runtime.LinuxPodSandboxConfig{
			Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmni": "2048"},
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD},
			},
		},
	}
}

// inNS runs a command inside the pod's namespaces with nsenter.
func inNS(t *testing.T, sb *Sandbox, args ...string) string {
	t.Helper()
	full := []string{"--net=" + sb.NetNSPath, "--ipc=" + sb.IPCNSPath, "--uts=" + sb.UTSNSPath}
	out, err := exec.Command("nsenter", append(full, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestRunStopRemove(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, testNetwork(t))
	ctx := context.Background()
	cfg := podConfig("web")
	sb, err := m.Run(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if sb.State != StateReady || len(sb.IPs) != 1 || !strings.HasPrefix(sb.IPs[0], "10.231.7.") {
		t.Fatalf("pod = %+v", sb)
	}
	if got := inNS(t, sb, "hostname"); got != "web-host" {
		t.Errorf("hostname in pod = %q", got)
	}
	if got := inNS(t, sb, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"); got != "80" {
		t.Errorf("net sysctl in pod = %q", got)
	}
	if got := inNS(t, sb, "cat", "/proc/sys/kernel/shmmni"); got != "2048" {
		t.Errorf("ipc sysctl in pod = %q", got)
	}
	if got := inNS(t, sb, "cat", "/sys/class/net/lo/operstate"); got == "down" {
		t.Errorf("loopback is down")
	}
	if hosts, _ := os.ReadFile(sb.HostsPath); !strings.Contains(string(hosts), "127.0.0.1\tlocalhost\n") || !strings.Contains(string(hosts), sb.IPs[0]+"\tweb-host\n") {
		t.Errorf("hosts = %q", hosts)
	}
	resolv, _ := os.ReadFile(sb.ResolvConfPath)
	if want := "search ns.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"; string(resolv) != want {
		t.Errorf("resolv.conf = %q, want %q", resolv, want)
	}
	if !infraAlive(sb.InfraPID, sb.ID) || sb.PIDNSPath == "" {
		t.Errorf("infra process not running: %+v", sb)
	}
	checkReachable(t, sb)

	again, err := m.Run(ctx, cfg, "")
	if err != nil || again.ID != sb.ID {
		t.Fatalf("retry = %v, %v; want the same pod %s", again, err, sb.ID)
	}
	for range 2 {
		if err := m.Stop(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := m.Get(sb.ID); got.State != StateNotReady {
		t.Errorf("state after stop = %v", got.State)
	}
	if infraAlive(sb.InfraPID, sb.ID) {
		t.Errorf("infra process survives stop")
	}
	for range 2 {
		if err := m.Remove(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Get(sb.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after remove = %v", err)
	}
	assertGone(t, m, sb)
}

// checkReachable listens on TCP inside the pod and connects to it from
// the host through the pod IP.
func checkReachable(t *testing.T, sb *Sandbox) {
	t.Helper()
	var l net.Listener
	err := inNamespaces(map[nsKind]string{nsNet: sb.NetNSPath}, func() (err error) {
		l, err = net.Listen("tcp", ":0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	c, err := net.DialTimeout("tcp", net.JoinHostPort(sb.IPs[0], strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		t.Fatalf("connect to the pod: %v", err)
	}
	defer c.Close()
	if b, _ := io.ReadAll(c); string(b) != "hi" {
		t.Errorf("read %q from the pod", b)
	}
}

func assertGone(t *testing.T, m *Manager, sb *Sandbox) {
	t.Helper()
	for _, p := range []string{sb.NetNSPath, sb.IPCNSPath, sb.UTSNSPath, sb.ShmPath, m.recordPath(sb.ID), m.stateDir(sb.ID),
		filepath.Join(cgroups.Root, "memory", cgroups.RelPath(sb.CgroupParent))} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s remains after remove", p)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), sb.ID) {
		t.Errorf("a mount of pod %s remains", sb.ID)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, nil)
	hostNet := func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	}
	for name, mod := range map[string]func(*runtime.PodSandboxConfig){
		"no metadata":        func(c *runtime.PodSandboxConfig) { c.Metadata = nil },
		"host sysctl":        func(c *runtime.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"kernel.hostname": "x"} },
		"net sysctl hostnet": func(c *runtime.PodSandboxConfig) { hostNet(c) },
		"ipc sysctl hostipc": func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Ipc = runtime.NamespaceMode_NODE
		},
		"port 0": func(c *runtime.PodSandboxConfig) { c.PortMappings = []*runtime.PortMapping{{HostPort: 80}} },
		"port range": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{HostPort: 70000, ContainerPort: 80}}
		},
		"bad proto": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{Protocol: 9, ContainerPort: 80}}
		},
		"bad dns": func(c *runtime.PodSandboxConfig) { c.DnsConfig.Servers = []string{"not-an-ip"} },
		"bad hostIP": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{HostPort: 80, ContainerPort: 80, HostIp: "localhost"}}
		},
		"cgroup ..": func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = "/a/../b" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := podConfig("bad")
			mod(cfg)
			if _, err := m.Run(context.Background(), cfg, ""); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Run = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := m.Run(context.Background(), podConfig("h"), "kata"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown handler: %v", err)
	}
	if ents, _ := os.ReadDir(m.podsDir()); len(ents) != 0 {
		t.Errorf("refused pods left %d dirs", len(ents))
	}
}

func TestHostNetworkPod(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, nil)
	cfg := podConfig("hostnet")
	cfg.Linux.Sysctls = map[string]string{"kernel.msgmax": "9000"}
	cfg.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_CONTAINER}
	sb, err := m.Run(context.Background(), cfg, "runc")
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if sb.NetNSPath != "" || sb.UTSNSPath != "" || sb.IPCNSPath == "" || sb.Hostname != host || sb.InfraPID != 0 {
		t.Errorf("host network pod = %+v", sb)
	}
	if err := m.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m, sb)
}

func TestReload(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) { testReload(t, legacy) })
	}
}

// testReload reloads a pod; with legacy, from a record in the layout
// before records were flat, which the load moves.
func testReload(t *testing.T, legacy bool) {
	requireRoot(t)
	root := t.TempDir()
	opts := Options{Root: filepath.Join(root, "root"), State: filepath.Join(root, "state")}
	m, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := podConfig("reload")
	cfg.Linux.Sysctls = nil
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	sb, err := m.Run(context.Background(), cfg, "crun")
	if err != nil {
		t.Fatal(err)
	}
	if legacy {
		old := filepath.Join(m.podsDir(), sb.ID, legacyRecordName)
		if err := os.Mkdir(filepath.Dir(old), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(m.recordPath(sb.ID), old); err != nil {
			t.Fatal(err)
		}
	}
	m2, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m2.Get(sb.ID)
	if err != nil || got.State != StateReady || got.RuntimeHandler != "crun" || got.Metadata().GetName() != "reload" {
		t.Fatalf("reloaded pod = %+v, %v", got, err)
	}
	if ents, _ := os.ReadDir(m2.podsDir()); len(ents) != 1 || ents[0].Name() != sb.ID+".json" {
		t.Errorf("pod records after the reload: %v, want only %s.json", ents, sb.ID)
	}
	if again, err := m2.Run(context.Background(), cfg, "crun"); err != nil || again.ID != sb.ID {
		t.Fatalf("retry after reload = %v, %v", again, err)
	}
	if err := m2.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m2, sb)
}

// With the real bridge plugin: DEL after the netns is gone still releases
// the pod's address.
func TestRealDelWithNetNSGone(t *testing.T) {
	requireRoot(t)
	nw, ipamDir := testNetworkWithIPAM(t)
	m := newTestManager(t, nw)
	cfg := podConfig("gone-real")
	cfg.Linux.Sysctls = nil
	sb, err := m.Run(context.Background(), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	lease := filepath.Join(ipamDir, "sbtest", sb.IPs[0])
	if _, err := os.Stat(lease); err != nil {
		t.Fatalf("no IPAM lease for %s: %v", sb.IPs[0], err)
	}
	if err := unpinNamespace(sb.NetNSPath); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(context.Background(), sb.ID); err != nil {
		t.Fatalf("stop with the netns gone: %v", err)
	}
	if _, err := os.Stat(lease); err == nil {
		t.Errorf("IPAM lease %s survives DEL", lease)
	}
	if err := m.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m, sb)
}

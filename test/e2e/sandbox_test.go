package e2e

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// podInfo is the part of PodSandboxStatus' verbose info the tests read.
type podInfo struct {
	InfraPID       int    `json:"pid"`
	NetNSPath      string `json:"netNamespacePath"`
	IPCNSPath      string `json:"ipcNamespacePath"`
	UTSNSPath      string `json:"utsNamespacePath"`
	CgroupParent   string `json:"cgroupParent"`
	HostnamePath   string `json:"hostnamePath"`
	ResolvConfPath string `json:"resolvConfPath"`
	HostsPath      string `json:"hostsPath"`
	ShmPath        string `json:"shmPath"`
}

func runPod(t *testing.T, d *framework.Daemon, cfg *runtime.PodSandboxConfig) string {
	t.Helper()
	resp, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.PodSandboxId
}

func podStatus(t *testing.T, d *framework.Daemon, id string) (*runtime.PodSandboxStatus, podInfo) {
	t.Helper()
	resp, err := d.Runtime.PodSandboxStatus(framework.Ctx(t), &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	var info podInfo
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatalf("verbose info %q: %v", resp.Info["info"], err)
	}
	return resp.Status, info
}

func stopRemovePod(t *testing.T, d *framework.Daemon, id string) {
	t.Helper()
	for range 2 { // both are idempotent
		if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("StopPodSandbox %s: %v", id, err)
		}
	}
	for range 2 {
		if _, err := d.Runtime.RemovePodSandbox(framework.Ctx(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("RemovePodSandbox %s: %v", id, err)
		}
	}
}

// inPod runs busybox inside the pod's namespaces.
func inPod(info podInfo, args ...string) *exec.Cmd {
	ns := []string{}
	if info.NetNSPath != "" {
		ns = append(ns, "--net="+info.NetNSPath)
	}
	if info.UTSNSPath != "" {
		ns = append(ns, "--uts="+info.UTSNSPath)
	}
	if info.IPCNSPath != "" {
		ns = append(ns, "--ipc="+info.IPCNSPath)
	}
	return exec.Command("nsenter", append(append(ns, "/bin/busybox"), args...)...)
}

func inPodOutput(t *testing.T, info podInfo, args ...string) string {
	t.Helper()
	out, err := inPod(info, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in pod: %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// serveHTTP runs busybox httpd inside the pod on port, serving body.
func serveHTTP(t *testing.T, info podInfo, port int, body string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := inPod(info, "httpd", "-f", "-p", strconv.Itoa(port), "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// httpGet fetches url, retrying while the server starts.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	body, err := httpGetWithin(url, "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestPodLifecycle(t *testing.T) {
	d := framework.StartDaemon(t)
	cfg := d.PodConfig(t, "life")
	cfg.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.96.0.10", "fd00::a"}, Searches: []string{"e2e.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5"}}
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024", "kernel.shmmni": "1234"}
	id := runPod(t, d, cfg)

	st, info := podStatus(t, d, id)
	if st.State != runtime.PodSandboxState_SANDBOX_READY || st.Metadata.Name != "life" || st.RuntimeHandler != "" || st.CreatedAt == 0 {
		t.Errorf("status = %v", st)
	}
	ip := net.ParseIP(st.GetNetwork().GetIp())
	if ip == nil || ip.To4() == nil {
		t.Fatalf("pod IP %q is not IPv4", st.GetNetwork().GetIp())
	}
	if got := inPodOutput(t, info, "hostname"); got != "life" {
		t.Errorf("hostname in pod = %q", got)
	}
	resolv, err := os.ReadFile(info.ResolvConfPath)
	want := "search e2e.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5\n"
	if err != nil || string(resolv) != want {
		t.Errorf("resolv.conf = %q, %v; want %q", resolv, err, want)
	}
	if got := inPodOutput(t, info, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"); got != "1024" {
		t.Errorf("net sysctl in pod = %q", got)
	}
	if got := inPodOutput(t, info, "cat", "/proc/sys/kernel/shmmni"); got != "1234" {
		t.Errorf("IPC sysctl in pod = %q", got)
	}
	if got := inPodOutput(t, info, "ip", "-o", "link", "show", "lo"); !strings.Contains(got, "UP") {
		t.Errorf("loopback not up in pod: %s", got)
	}
	if info.InfraPID == 0 {
		t.Errorf("pid: POD pod has no infra process")
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", info.CgroupParent)); err != nil || !strings.Contains(info.CgroupParent, id) {
		t.Errorf("pod cgroup %q: %v", info.CgroupParent, err)
	}
	var shm unixStatfs
	if err := statfs(info.ShmPath, &shm); err != nil || shm.size() != 64<<20 {
		t.Errorf("pod shm at %s: %v, size %d, want 64 MiB", info.ShmPath, err, shm.size())
	}
	veths := hostVeths(t, d, id)
	if len(veths) == 0 {
		t.Errorf("no host veth in the CNI result of the pod")
	}
	serveHTTP(t, info, 8080, "from-pod")
	if got := httpGet(t, "http://"+net.JoinHostPort(ip.String(), "8080")+"/"); got != "from-pod" {
		t.Errorf("GET pod = %q", got)
	}

	// A kubelet retry gets the same pod.
	if again := runPod(t, d, cfg); again != id {
		t.Errorf("retried RunPodSandbox = %s, want %s", again, id)
	}
	listed := listPods(t, d, &runtime.PodSandboxFilter{Id: id[:12], LabelSelector: map[string]string{"name": "life"}})
	if len(listed) != 1 || listed[0].Id != id {
		t.Errorf("list by id prefix and label = %v", listed)
	}
	if got := listPods(t, d, &runtime.PodSandboxFilter{LabelSelector: map[string]string{"name": "other"}}); len(got) != 0 {
		t.Errorf("list by a label no pod has = %v", got)
	}

	if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	st, _ = podStatus(t, d, id)
	if st.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("state after stop = %v", st.State)
	}
	if got := listPods(t, d, &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}}); len(got) != 0 {
		t.Errorf("READY pods after stop = %v", got)
	}
	stopRemovePod(t, d, id)
	assertPodGone(t, d, id, info)
	for _, v := range veths {
		if err := exec.Command("ip", "link", "show", v).Run(); err == nil {
			t.Errorf("host veth %s remains after remove", v)
		}
	}
	if _, err := d.Runtime.PodSandboxStatus(framework.Ctx(t), &runtime.PodSandboxStatusRequest{PodSandboxId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("status of a removed pod = %v, want NotFound", err)
	}
}

func listPods(t *testing.T, d *framework.Daemon, f *runtime.PodSandboxFilter) []*runtime.PodSandbox {
	t.Helper()
	resp, err := d.Runtime.ListPodSandbox(framework.Ctx(t), &runtime.ListPodSandboxRequest{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Items
}

// assertPodGone checks that nothing of the pod is left on the host.
func assertPodGone(t *testing.T, d *framework.Daemon, id string, info podInfo) {
	t.Helper()
	for _, dir := range []string{d.State, d.Root} {
		mounts, err := framework.MountsUnder(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mounts {
			if strings.Contains(m, id) {
				t.Errorf("mount %s remains", m)
			}
		}
	}
	for _, p := range []string{info.NetNSPath, info.IPCNSPath, info.UTSNSPath, info.ShmPath, info.HostnamePath,
		filepath.Join(d.Root, "pods", id+".json"), filepath.Join(d.Root, "pods", id), filepath.Join(d.State, "pods", id),
		filepath.Join("/sys/fs/cgroup/memory", info.CgroupParent), filepath.Join("/sys/fs/cgroup/unified", info.CgroupParent)} {
		if p == "" || p == "/sys/fs/cgroup/memory" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s remains after remove", p)
		}
	}
	if info.InfraPID != 0 {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(info.InfraPID) + "/cmdline"); err == nil && strings.Contains(string(b), id) {
			t.Errorf("infra process %d remains", info.InfraPID)
		}
	}
	// portmap and ipMasq rules carry the pod ID in their comments.
	if out, err := framework.PacketFilterRules(); err != nil {
		t.Error(err)
	} else if strings.Contains(out, id) {
		t.Errorf("iptables or nftables rules of the pod remain")
	}
}

func TestPodsReachEachOther(t *testing.T) {
	d := framework.StartDaemon(t)
	a := runPod(t, d, d.PodConfig(t, "pod-a"))
	b := runPod(t, d, d.PodConfig(t, "pod-b"))
	_, infoA := podStatus(t, d, a)
	stB, infoB := podStatus(t, d, b)
	serveHTTP(t, infoB, 8080, "hello-from-b")
	url := "http://" + net.JoinHostPort(stB.Network.Ip, "8080") + "/"
	var out []byte
	var err error
	// busybox-static's wget crashes with -T; the client is bounded by the
	// retries and the server being local instead.
	framework.Poll(5*time.Second, func() bool {
		out, err = inPod(infoA, "wget", "-q", "-O", "-", url).CombinedOutput()
		return err == nil
	})
	if err != nil || string(out) != "hello-from-b" {
		t.Errorf("wget from pod a to pod b: %v: %q", err, out)
	}
	stopRemovePod(t, d, a)
	stopRemovePod(t, d, b)
	assertPodGone(t, d, a, infoA)
	assertPodGone(t, d, b, infoB)
}

func TestPodHostPort(t *testing.T) {
	d := framework.StartDaemon(t)
	cfg := d.PodConfig(t, "hostport")
	hostPort := freePort(t)
	cfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: int32(hostPort)}}
	id := runPod(t, d, cfg)
	_, info := podStatus(t, d, id)
	if out, err := framework.PacketFilterRules(); err != nil || !strings.Contains(out, id) {
		t.Errorf("no iptables or nftables rule names the pod while it runs (%v); the leak check below would prove nothing", err)
	}
	serveHTTP(t, info, 8080, "via-hostport")
	if got := httpGet(t, "http://127.0.0.1:"+strconv.Itoa(hostPort)+"/"); got != "via-hostport" {
		t.Errorf("GET through hostPort = %q", got)
	}
	stopRemovePod(t, d, id)
	assertPodGone(t, d, id, info)
}

func TestPodHostNetwork(t *testing.T) {
	d := framework.StartDaemon(t)
	cfg := d.PodConfig(t, "hostnet")
	cfg.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_CONTAINER}
	id := runPod(t, d, cfg)
	st, info := podStatus(t, d, id)
	if info.NetNSPath != "" || info.UTSNSPath != "" || st.Network != nil || info.InfraPID != 0 {
		t.Errorf("host-network pod has a network of its own: %+v %v", info, st.Network)
	}
	host, _ := os.Hostname()
	if hn, _ := os.ReadFile(info.HostnamePath); strings.TrimSpace(string(hn)) != host {
		t.Errorf("host-network pod hostname = %q, want %q", hn, host)
	}
	// In the host's network namespace the pod sees the host's interfaces.
	hostLinks, _ := exec.Command("ip", "-o", "link").Output()
	podLinks := inPodOutput(t, info, "ip", "-o", "link")
	if strings.Count(podLinks, "\n") != strings.Count(strings.TrimSpace(string(hostLinks)), "\n") {
		t.Errorf("host-network pod links differ from the host's:\n%s\nhost:\n%s", podLinks, hostLinks)
	}
	stopRemovePod(t, d, id)
	assertPodGone(t, d, id, info)
}

func TestPodRefusesBadConfig(t *testing.T) {
	d := framework.StartDaemon(t)
	for name, mod := range map[string]func(*runtime.PodSandboxConfig){
		"host sysctl": func(c *runtime.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"kernel.panic": "1"} },
		"net sysctl host net": func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
			c.Linux.Sysctls = map[string]string{"net.core.somaxconn": "1"}
		},
		"host port too big": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: 70000}}
		},
		"container port 0": func(c *runtime.PodSandboxConfig) { c.PortMappings = []*runtime.PortMapping{{HostPort: 8080}} },
		"no metadata":      func(c *runtime.PodSandboxConfig) { c.Metadata = nil },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := d.PodConfig(t, "bad")
			mod(cfg)
			_, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: cfg})
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("RunPodSandbox = %v, want InvalidArgument", err)
			}
		})
	}
	_, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: d.PodConfig(t, "h"), RuntimeHandler: "no-such-handler"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "no-such-handler") {
		t.Errorf("unknown handler: %v", err)
	}
	if len(listPods(t, d, nil)) != 0 {
		t.Errorf("refused pods are listed")
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root, "pods")); len(ents) != 0 {
		t.Errorf("refused pods left %d record dirs", len(ents))
	}
	for _, ns := range []string{"netns", "ipcns", "utsns"} {
		if ents, _ := os.ReadDir(filepath.Join(d.State, ns)); len(ents) != 0 {
			t.Errorf("refused pods left %d %s pins", len(ents), ns)
		}
	}
	// Unknown IDs: stop and remove succeed, status is NotFound.
	if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtime.StopPodSandboxRequest{PodSandboxId: "unknown"}); err != nil {
		t.Errorf("stop unknown pod: %v", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(framework.Ctx(t), &runtime.RemovePodSandboxRequest{PodSandboxId: "unknown"}); err != nil {
		t.Errorf("remove unknown pod: %v", err)
	}
	if _, err := d.Runtime.PodSandboxStatus(framework.Ctx(t), &runtime.PodSandboxStatusRequest{PodSandboxId: "unknown"}); status.Code(err) != codes.NotFound {
		t.Errorf("status of unknown pod = %v, want NotFound", err)
	}
}

func TestPodRuntimeHandlerAndRestart(t *testing.T) {
	d := framework.StartDaemon(t)
	cfg := d.PodConfig(t, "handler")
	resp, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "crun"})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.PodSandboxId
	d.Stop(t)
	d.Start(t)
	st, info := podStatus(t, d, id)
	if st.State != runtime.PodSandboxState_SANDBOX_READY || st.RuntimeHandler != "crun" {
		t.Errorf("after restart: state %v handler %q", st.State, st.RuntimeHandler)
	}
	if again, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "crun"}); err != nil || again.PodSandboxId != id {
		t.Errorf("retry after restart = %v, %v; want %s", again, err, id)
	}
	stopRemovePod(t, d, id)
	assertPodGone(t, d, id, info)
}

func TestPodCNIFailureLeavesNothing(t *testing.T) {
	d := framework.StartDaemon(t)
	// Lexically first, so it is the network in use: bridge works, then a
	// plugin that does not exist fails the ADD after an IP was allocated.
	broken := `{"cniVersion":"1.0.0","name":"broken","plugins":[
 {"type":"bridge","bridge":"crie2ebrk0","ipam":{"type":"host-local","dataDir":"` + filepath.Join(d.Dir, "ipam") + `","ranges":[[{"subnet":"10.231.9.0/24"}]]}},
 {"type":"no-such-plugin"}]}`
	if err := os.WriteFile(filepath.Join(d.CNIConfDir, "00-broken.conflist"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", "crie2ebrk0").Run() })
	_, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: d.PodConfig(t, "cnifail")})
	if err == nil || !strings.Contains(err.Error(), "no-such-plugin") {
		t.Fatalf("RunPodSandbox on a broken network = %v, want an error naming the plugin", err)
	}
	if len(listPods(t, d, nil)) != 0 {
		t.Errorf("failed pod is listed")
	}
	for _, dir := range []string{filepath.Join(d.Root, "pods"), filepath.Join(d.State, "pods"), filepath.Join(d.State, "netns"), filepath.Join(d.State, "ipcns"), filepath.Join(d.State, "utsns")} {
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s holds %d entries after a failed run", dir, len(ents))
		}
	}
	// DEL ran: host-local released the address it gave.
	ents, _ := os.ReadDir(filepath.Join(d.Dir, "ipam", "broken"))
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			t.Errorf("IP %s still allocated after the failed run", e.Name())
		}
	}
	if mounts, _ := framework.MountsUnder(d.State); len(mounts) != 0 {
		t.Errorf("mounts remain: %v", mounts)
	}
}

func TestPodBandwidthAnnotations(t *testing.T) {
	d := framework.StartDaemon(t)
	cfg := d.PodConfig(t, "bw")
	// Rates no other test uses, so the qdiscs found are this pod's.
	cfg.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "3456k", "kubernetes.io/egress-bandwidth": "2345k"}
	id := runPod(t, d, cfg)
	_, info := podStatus(t, d, id)
	qdiscs := func() string {
		out, err := exec.Command("tc", "qdisc", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("tc qdisc show: %v: %s", err, out)
		}
		return string(out)
	}
	got := qdiscs()
	for _, rate := range []string{"3456Kbit", "2345Kbit"} {
		if !strings.Contains(got, "rate "+rate) {
			t.Errorf("no tbf qdisc with rate %s for the pod:\n%s", rate, got)
		}
	}
	stopRemovePod(t, d, id)
	got = qdiscs()
	for _, rate := range []string{"3456Kbit", "2345Kbit"} {
		if strings.Contains(got, "rate "+rate) {
			t.Errorf("qdisc with rate %s remains after remove", rate)
		}
	}
	assertPodGone(t, d, id, info)

	bad := d.PodConfig(t, "bwbad")
	bad.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "fast"}
	if _, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtime.RunPodSandboxRequest{Config: bad}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad bandwidth annotation: %v, want InvalidArgument", err)
	}
}

func TestPodShmSizeFromConfig(t *testing.T) {
	d := framework.StartDaemon(t, framework.WithConfig("[sandbox]\nshm_size = 1048576\n"))
	id := runPod(t, d, d.PodConfig(t, "shm"))
	_, info := podStatus(t, d, id)
	var shm unixStatfs
	if err := statfs(info.ShmPath, &shm); err != nil || shm.size() != 1<<20 {
		t.Errorf("pod shm %s: %v, size %d, want 1 MiB", info.ShmPath, err, shm.size())
	}
	stopRemovePod(t, d, id)
	assertPodGone(t, d, id, info)
}

func TestPodDualStack(t *testing.T) {
	d := framework.StartDaemon(t)
	conf := `{"cniVersion":"1.0.0","name":"dual","plugins":[
 {"type":"bridge","bridge":"crie2edual0","isGateway":true,
  "ipam":{"type":"host-local","dataDir":"` + filepath.Join(d.Dir, "ipam") + `",
   "ranges":[[{"subnet":"fd42:e2e::/64"}],[{"subnet":"10.231.11.0/24"}]]}}]}`
	if err := os.WriteFile(filepath.Join(d.CNIConfDir, "00-dual.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", "crie2edual0").Run() })
	id := runPod(t, d, d.PodConfig(t, "dual"))
	st, info := podStatus(t, d, id)
	// IPv4 is the primary even though the network lists IPv6 first.
	primary := net.ParseIP(st.GetNetwork().GetIp())
	if primary == nil || primary.To4() == nil || len(st.Network.AdditionalIps) != 1 {
		t.Fatalf("pod network = %v, want an IPv4 primary and one additional IP", st.GetNetwork())
	}
	v6 := net.ParseIP(st.Network.AdditionalIps[0].Ip)
	if v6 == nil || v6.To4() != nil {
		t.Fatalf("additional IP %q is not IPv6", st.Network.AdditionalIps[0].Ip)
	}
	serveHTTP(t, info, 8080, "over-v6")
	if got := httpGet(t, "http://"+net.JoinHostPort(v6.String(), "8080")+"/"); got != "over-v6" {
		t.Errorf("GET over IPv6 = %q", got)
	}
	stopRemovePod(t, d, id)
	assertPodGone(t, d, id, info)
}

// hostVeths names the host-side interfaces of the pod from libcni's result
// cache (<state>/cni-cache/results/<network>-<pod>-eth0): those without a
// sandbox, other than the bridge.
func hostVeths(t *testing.T, d *framework.Daemon, id string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(d.State, "cni-cache", "results", "*-"+id+"-eth0"))
	if len(files) != 1 {
		t.Fatalf("CNI result cache files for the pod: %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var cached struct {
		Result struct {
			Interfaces []struct{ Name, Mac, Sandbox string }
		}
	}
	if err := json.Unmarshal(b, &cached); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range cached.Result.Interfaces {
		if i.Sandbox == "" && strings.HasPrefix(i.Name, "veth") {
			out = append(out, i.Name)
		}
	}
	return out
}

// podContainer creates and starts a busybox container running script in
// pod id.
func podContainer(t *testing.T, d *framework.Daemon, pod string, podCfg *runtime.PodSandboxConfig, image, name, script string) string {
	t.Helper()
	id, err := d.CreateStart(framework.Ctx(t), pod, podCfg, framework.ContainerConfig(image, name, script))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func execOut(t *testing.T, d *framework.Daemon, ctr string, cmd ...string) string {
	t.Helper()
	resp, err := d.Runtime.ExecSync(framework.Ctx(t), &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: cmd, Timeout: 10})
	if err != nil {
		t.Fatalf("ExecSync %v: %v", cmd, err)
	}
	if resp.ExitCode != 0 {
		t.Errorf("ExecSync %v: exit %d: %s", cmd, resp.ExitCode, resp.Stderr)
	}
	return strings.TrimSpace(string(resp.Stdout))
}

// Containers of two pods on the pod network: HTTP from one to the other,
// and the pod's shared PID namespace, hostname and sysctls seen inside.
func TestPodContainersOnPodNetwork(t *testing.T) {
	d := framework.StartDaemon(t)
	image := d.PullBusybox(t, framework.StartRegistry(t))
	cfgA := d.PodConfig(t, "web")
	cfgA.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	cfgA.Linux.Sysctls = map[string]string{"net.ipv4.tcp_syncookies": "0"}
	cfgB := d.PodConfig(t, "client")
	a, b := runPod(t, d, cfgA), runPod(t, d, cfgB)
	stA, infoA := podStatus(t, d, a)
	_, infoB := podStatus(t, d, b)
	web := podContainer(t, d, a, cfgA, image, "httpd", "echo hello-from-web > /tmp/index.html && exec httpd -f -p 8080 -h /tmp")
	client := podContainer(t, d, b, cfgB, image, "client", "exec sleep 3600")

	url := "http://" + net.JoinHostPort(stA.Network.Ip, "8080") + "/index.html"
	var got string
	framework.Poll(5*time.Second, func() bool {
		resp, err := d.Runtime.ExecSync(framework.Ctx(t), &runtime.ExecSyncRequest{ContainerId: client, Cmd: []string{"wget", "-q", "-O", "-", url}, Timeout: 10})
		if err != nil || resp.ExitCode != 0 {
			return false
		}
		got = strings.TrimSpace(string(resp.Stdout))
		return true
	})
	if got != "hello-from-web" {
		t.Errorf("wget from pod client to pod web = %q", got)
	}
	if init := execOut(t, d, web, "cat", "/proc/1/cmdline"); !strings.HasPrefix(init, "criserver-infra") {
		t.Errorf("PID 1 of a pid: POD pod is %q, want the infra process", init)
	}
	if hn := execOut(t, d, web, "hostname"); hn != "web" {
		t.Errorf("hostname in container = %q", hn)
	}
	if v := execOut(t, d, web, "cat", "/proc/sys/net/ipv4/tcp_syncookies"); v != "0" {
		t.Errorf("pod sysctl in container = %q", v)
	}
	if shm := execOut(t, d, web, "sh", "-c", "grep ' /dev/shm ' /proc/mounts"); !strings.Contains(shm, "size=65536k") {
		t.Errorf("container /dev/shm is not the pod's 64 MiB tmpfs: %q", shm)
	}
	stopRemovePod(t, d, a)
	stopRemovePod(t, d, b)
	assertPodGone(t, d, a, infoA)
	assertPodGone(t, d, b, infoB)
}

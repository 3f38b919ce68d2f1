package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
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

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/test/e2e/framework"
)

func TestVersion(t *testing.T) {
	d := framework.StartDaemon(t)
	v, err := d.Runtime.Version(framework.Ctx(t), &runtime.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "criserver" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Errorf("Version = %+v, want criserver, a version, v1", v)
	}
}

func networkCondition(t *testing.T, d *framework.Daemon) *runtime.RuntimeCondition {
	t.Helper()
	st, err := d.Runtime.Status(framework.Ctx(t), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var network *runtime.RuntimeCondition
	for _, c := range st.Status.Conditions {
		switch c.Type {
		case runtime.RuntimeReady:
			if !c.Status {
				t.Errorf("RuntimeReady false: %s %s", c.Reason, c.Message)
			}
		case runtime.NetworkReady:
			network = c
		}
	}
	if network == nil {
		t.Fatalf("Status has no NetworkReady condition: %v", st.Status.Conditions)
	}
	return network
}

func TestStatusDefaultNetworkInstalled(t *testing.T) {
	d := framework.StartDaemon(t)
	if c := networkCondition(t, d); !c.Status {
		t.Errorf("NetworkReady false with the built-in default network: %s %s", c.Reason, c.Message)
	}
	if _, err := os.Stat(filepath.Join(d.CNIConfDir, "10-criserver-bridge.conflist")); err != nil {
		t.Errorf("default network not installed: %v", err)
	}
}

func TestStatusNetworkFollowsConfDir(t *testing.T) {
	d := framework.StartDaemon(t, framework.WithConfig("[cni]\ninstall_default_network = false\n"))
	c := networkCondition(t, d)
	if c.Status || c.Reason != "NetworkPluginNotReady" || c.Message == "" {
		t.Fatalf("NetworkReady with an empty conf dir = %+v, want false, NetworkPluginNotReady, a message", c)
	}
	conf := `{"cniVersion":"1.0.0","name":"e2e","plugins":[{"type":"loopback"}]}`
	if err := os.WriteFile(filepath.Join(d.CNIConfDir, "50-e2e.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := networkCondition(t, d); !c.Status {
		t.Errorf("NetworkReady after a config appeared = %+v, want true without restart", c)
	}
}

func TestRuntimeConfigCgroupDriver(t *testing.T) {
	for _, tc := range []struct {
		config string
		want   runtime.CgroupDriver
	}{
		{"", runtime.CgroupDriver_CGROUPFS},
		{"cgroup_driver = \"systemd\"\n", runtime.CgroupDriver_SYSTEMD},
	} {
		d := framework.StartDaemon(t, framework.WithConfig(tc.config))
		rc, err := d.Runtime.RuntimeConfig(framework.Ctx(t), &runtime.RuntimeConfigRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := rc.GetLinux().GetCgroupDriver(); got != tc.want {
			t.Errorf("config %q: cgroup driver %v, want %v", tc.config, got, tc.want)
		}
	}
}

func TestUnimplementedIsNotFaked(t *testing.T) {
	d := framework.StartDaemon(t)
	_, err := d.Runtime.CheckpointContainer(framework.Ctx(t), &runtime.CheckpointContainerRequest{ContainerId: "x"})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("CheckpointContainer: %v, want Unimplemented", err)
	}
}

func TestPanicRecovered(t *testing.T) {
	d := framework.StartDaemon(t, framework.WithEnv("CRISERVER_FAULT_PANIC_METHOD=/runtime.v1.RuntimeService/RuntimeConfig"))
	_, err := d.Runtime.RuntimeConfig(framework.Ctx(t), &runtime.RuntimeConfigRequest{})
	if status.Code(err) != codes.Internal {
		t.Errorf("panicking RPC: %v, want Internal", err)
	}
	if _, err := d.Runtime.Version(framework.Ctx(t), &runtime.VersionRequest{}); err != nil {
		t.Errorf("daemon not serving after a panic: %v", err)
	}
}

func TestSocketPermissions(t *testing.T) {
	d := framework.StartDaemon(t)
	// The state dir is traversable, not listable or writable, by others: a
	// user-namespaced pod's root (another host uid) reaches its files there.
	for path, want := range map[string]os.FileMode{d.Socket: 0o660, filepath.Dir(d.Socket): 0o711} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", path, got, want)
		}
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	d := framework.StartDaemon(t)
	bin, err := framework.Binary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--config", d.ConfigPath, "--root", d.Root, "--state", d.State,
		"--listen", d.Socket+"2", "--cni-conf-dir", d.CNIConfDir).CombinedOutput()
	if err == nil {
		t.Fatalf("second daemon on the same state started:\n%s", out)
	}
	if !strings.Contains(string(out), "another criserver") {
		t.Errorf("second daemon's message does not say why:\n%s", out)
	}
	if _, err := d.Runtime.Version(framework.Ctx(t), &runtime.VersionRequest{}); err != nil {
		t.Errorf("first daemon hurt by the second: %v", err)
	}
}

func TestGracefulStopAndStaleSocket(t *testing.T) {
	d := framework.StartDaemon(t)
	d.Stop(t)
	if code := d.ExitCode(); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
		t.Errorf("socket left after SIGTERM: %v", err)
	}
	d.Start(t)
	d.Kill(t)
	if _, err := os.Stat(d.Socket); err != nil {
		t.Fatalf("kill -9 should leave the socket file behind for this test: %v", err)
	}
	d.Start(t) // a stale socket must not stop the next start
	if _, err := d.Runtime.Version(framework.Ctx(t), &runtime.VersionRequest{}); err != nil {
		t.Errorf("after restart over a stale socket: %v", err)
	}
}

func TestConfigRefusesUnknownKey(t *testing.T) {
	framework.Require(t)
	bin, err := framework.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("cgroup_drivr = \"systemd\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--config", cfg, "--state", filepath.Join(dir, "state")).CombinedOutput()
	if err == nil {
		t.Fatalf("daemon started with an unknown key:\n%s", out)
	}
	if !strings.Contains(string(out), "cgroup_drivr") || !strings.Contains(string(out), cfg) {
		t.Errorf("message does not name the key and the file:\n%s", out)
	}
}

func TestConfigSubcommandPrintsEffectiveConfig(t *testing.T) {
	framework.Require(t)
	bin, err := framework.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := os.MkdirAll(filepath.Join(dir, "config.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		cfg: "cgroup_driver = \"systemd\"\n",
		filepath.Join(dir, "config.d", "10-a.toml"): "cgroup_driver = \"cgroupfs\"\n",
	}
	for p, body := range files {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(bin, "config", "--config", cfg, "--root", "/srv/criserver").CombinedOutput()
	if err != nil {
		t.Fatalf("criserver config: %v\n%s", err, out)
	}
	for _, want := range []string{`cgroup_driver = "cgroupfs"`, `root = "/srv/criserver"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("effective config lacks %s:\n%s", want, out)
		}
	}
}

func TestMetricsServed(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	d := framework.StartDaemon(t, framework.WithArgs("--metrics-address", addr))
	if _, err := d.Runtime.Version(framework.Ctx(t), &runtime.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	var body string
	framework.Poll(10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return true
	})
	want := `criserver_grpc_request_duration_seconds_count{method="/runtime.v1.RuntimeService/Version"`
	if !strings.Contains(body, want) {
		t.Errorf("metrics lack %s:\n%.2000s", want, body)
	}
}

func TestStatusReportsHandlersAndFeatures(t *testing.T) {
	d := framework.StartDaemon(t)
	st, err := d.Runtime.Status(framework.Ctx(t), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, h := range st.RuntimeHandlers {
		names[h.Name] = true
	}
	for _, want := range []string{"", "runc", "crun"} {
		if !names[want] {
			t.Errorf("Status runtime handlers %v lack %q", names, want)
		}
	}
	if !st.GetFeatures().GetSupplementalGroupsPolicy() {
		t.Errorf("Status features %v: supplemental groups policy not advertised", st.Features)
	}
	// Verbose Status details what each handler's runtime reported; it
	// agrees with runtime_handlers.
	v, err := d.Runtime.Status(framework.Ctx(t), &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var feats map[string]struct {
		RecursiveReadOnly, IDMappedMounts, UserNamespaces bool
	}
	if err := json.Unmarshal([]byte(v.Info["runtimeHandlerFeatures"]), &feats); err != nil {
		t.Fatalf("runtimeHandlerFeatures %q: %v", v.Info["runtimeHandlerFeatures"], err)
	}
	for _, h := range v.RuntimeHandlers {
		f, ok := feats[h.Name]
		if !ok || f.UserNamespaces != h.GetFeatures().GetUserNamespaces() || f.RecursiveReadOnly != h.GetFeatures().GetRecursiveReadOnlyMounts() ||
			f.UserNamespaces && !f.IDMappedMounts {
			t.Errorf("handler %q: runtime_handlers %v, verbose %+v", h.Name, h.GetFeatures(), f)
		}
	}
}

// TestDefaultHandlerChoice: RuntimeHandler "" runs crun where crun can run
// here, else runc with a warning at start; verbose Status says which, and
// a container of a default pod reports the handler that runs it.
func TestDefaultHandlerChoice(t *testing.T) {
	want := "runc"
	if _, err := exec.LookPath("crun"); err == nil && len(cgroups.HybridUnifiedControllers(cgroups.Root)) == 0 {
		want = "crun"
	}
	for _, tc := range []struct {
		name, config, want string
	}{
		{"host", "[runtime]\ndefault_handler = \"\"\n", want},
		{"crun missing", "[runtime]\ndefault_handler = \"\"\n[runtime.handlers.crun]\nruntime_path = \"/nonexistent/crun\"\n", "runc"},
		{"pinned", "[runtime]\ndefault_handler = \"runc\"\n", "runc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := framework.StartDaemon(t, framework.WithConfig(tc.config))
			st, err := d.Runtime.Status(framework.Ctx(t), &runtime.StatusRequest{Verbose: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Info["defaultRuntimeHandler"]; got != tc.want {
				t.Errorf("verbose Status defaultRuntimeHandler = %q (%s), want %q", got, st.Info["defaultRuntimeHandlerReason"], tc.want)
			}
			warned := strings.Contains(d.Output(), "Default runtime handler falls back to runc")
			if fallback := tc.want == "runc" && tc.name != "pinned"; warned != fallback {
				t.Errorf("fallback warning logged: %v, want %v; log:\n%s", warned, fallback, d.Output())
			}
		})
	}
}

// TestSystemdNotify: under a Type=notify unit the daemon tells systemd
// READY=1 once it serves and STOPPING=1 when it starts draining.
func TestSystemdNotify(t *testing.T) {
	framework.Require(t)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d := framework.StartDaemon(t, framework.WithEnv("NOTIFY_SOCKET="+sock))
	expectNotify(t, conn, "READY=1")
	d.Stop(t)
	expectNotify(t, conn, "STOPPING=1")
}

func expectNotify(t *testing.T, conn *net.UnixConn, want string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != want {
		t.Fatalf("notify socket got %q (%v), want %q", buf[:n], err, want)
	}
}

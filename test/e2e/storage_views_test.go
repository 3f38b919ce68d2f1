package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// duB1 is du -scx -B1 over paths: allocated bytes, each inode once.
func duB1(t *testing.T, paths ...string) int64 {
	t.Helper()
	out, err := exec.Command("du", append([]string{"-scx", "-B1"}, paths...)...).Output()
	if err != nil {
		t.Fatalf("du %v: %v", paths, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	n, err := strconv.ParseInt(strings.Fields(lines[len(lines)-1])[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dfJSON is the part of `criserver df --json` the tests read.
type dfRow struct {
	Type                              string
	Count, Active                     int
	Size, Shared, Unique, Reclaimable int64
}

type dfJSON struct {
	Summary []dfRow `json:"summary"`
	Images  []struct {
		ID                   string `json:"id"`
		Size, Shared, Unique int64
		Containers           int
	} `json:"images"`
	Containers []struct {
		ID       string                        `json:"id"`
		Pod      string                        `json:"pod"`
		Name     string                        `json:"name"`
		State    string                        `json:"state"`
		Writable struct{ Bytes, Inodes int64 } `json:"writable"`
	} `json:"containers"`
	Layers []struct {
		ChainID string                        `json:"chainID"`
		Usage   struct{ Bytes, Inodes int64 } `json:"usage"`
		Images  []string                      `json:"images"`
	} `json:"layers"`
	Total struct{ Bytes, Inodes int64 } `json:"total"`
}

func (d dfJSON) row(typ string) dfRow {
	for _, s := range d.Summary {
		if s.Type == typ {
			return s
		}
	}
	return dfRow{}
}

func runDf(t *testing.T, root string) dfJSON {
	t.Helper()
	var df dfJSON
	if err := json.Unmarshal([]byte(mustCriserver(t, "df", "--json", "--root", root)), &df); err != nil {
		t.Fatalf("df --json: %v", err)
	}
	return df
}

// checkDfAgainstDu compares df's figures with du of the same directories:
// the whole root, the layer directories, and each container's upper
// directory without the directory itself (what the CRI reports). The store
// is idle, but a record the daemon rewrites meanwhile would differ, so a
// mismatch is measured again before it counts.
func checkDfAgainstDu(t *testing.T, root string) dfJSON {
	t.Helper()
	var problems []string
	for attempt := 0; attempt < 3; attempt++ {
		df := runDf(t, root)
		problems = nil
		if du := duB1(t, root); df.Total.Bytes != du {
			problems = append(problems, fmt.Sprintf("total %d bytes, du -sx of the root %d", df.Total.Bytes, du))
		}
		var dirs []string
		var layers int64
		for _, l := range df.Layers {
			dirs = append(dirs, filepath.Join(root, "overlay2", strings.TrimPrefix(l.ChainID, "sha256:")))
			layers += l.Usage.Bytes
		}
		if du := duB1(t, dirs...); layers != du {
			problems = append(problems, fmt.Sprintf("layers %d bytes, du %d", layers, du))
		}
		for _, c := range df.Containers {
			upper := filepath.Join(root, "overlay2", c.ID, "diff")
			var self unix.Stat_t
			if err := unix.Lstat(upper, &self); err != nil {
				t.Fatal(err)
			}
			if du := duB1(t, upper) - self.Blocks*512; c.Writable.Bytes != du {
				problems = append(problems, fmt.Sprintf("container %s writable %d bytes, du %d", c.ID, c.Writable.Bytes, du))
			}
		}
		if len(problems) == 0 {
			return df
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("df differs from du:\n%s", strings.Join(problems, "\n"))
	return dfJSON{}
}

// TestDiffAndDf runs a container that adds, changes and deletes files
// (one from the image's lower layer, and a directory replaced whole) and
// checks `criserver diff` and `criserver df` against it while it runs,
// after it exits, with the daemon stopped, and after it is removed.
func TestDiffAndDf(t *testing.T) {
	var root string
	rootFromConfig := func(d *framework.Daemon) error {
		root = d.Root
		return framework.WithConfig(fmt.Sprintf("root = %q\n", d.Root))(d)
	}
	e := newCtrEnv(t, rootFromConfig)
	ctx := framework.Ctx(t)
	app := framework.BusyboxImage(t)
	app.AddLayer(
		framework.Dir("app", 0o755), framework.File("app/conf", "c\n", 0o644), framework.File("app/keep", "k\n", 0o644),
		framework.Dir("app/data", 0o755), framework.File("app/data/a", "a\n", 0o644),
		framework.Dir("app/data/sub", 0o755), framework.File("app/data/sub/c", "c\n", 0o644))
	e.reg.Push(t, "app", "v1", app)
	other := framework.BusyboxImage(t)
	other.AddLayer(framework.File("other.bin", strings.Repeat("o", 50000), 0o644))
	e.reg.Push(t, "other", "v1", other)
	for _, ref := range []string{e.reg.Ref("app", "v1"), e.reg.Ref("other", "v1")} {
		if _, err := e.d.Image.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
	}
	cfg := e.config("writer", `set -e
echo new > /created
echo more >> /app/keep
rm /app/conf
rm /etc/group
rm -rf /app/data && mkdir /app/data && echo n > /app/data/new
dd if=/dev/urandom of=/big bs=65536 count=1 2>/dev/null
ln /big /big-link
truncate -s 100M /sparse
touch "/odd
name" "$(printf '/bad\377')"
echo > /done
exec sleep 3600`)
	cfg.Image.Image = e.reg.Ref("app", "v1")
	id := e.run(t, cfg)

	// The runtime adds the mountpoints of the pod's files.
	// Text escapes the newline and the byte that is not UTF-8.
	want := []string{
		"C /app", "D /app/conf", "C /app/data", "D /app/data/a", "A /app/data/new", "D /app/data/sub", "C /app/keep",
		`A /bad\xff`, "A /big", "A /big-link", "A /created", "A /done", "C /etc", "D /etc/group",
		"A /etc/hostname", "A /etc/hosts", "A /etc/resolv.conf", `A /odd\nname`, "A /sparse",
	}
	var got []string
	framework.Poll(30*time.Second, func() bool {
		got = strings.Split(strings.TrimSpace(mustCriserver(t, "diff", "--config", e.d.ConfigPath, id[:12])), "\n")
		return slices.Contains(got, "A /done")
	})
	if !slices.Equal(got, want) {
		t.Fatalf("criserver diff of a running container:\n got %q\nwant %q", got, want)
	}
	t.Logf("$ criserver diff %s\n%s", id[:12], strings.Join(got, "\n"))

	// --json has the same changes, exact; --name/--pod finds the same container.
	var js struct {
		ContainerID string `json:"containerID"`
		Changes     []struct {
			Kind, Path string
			PathBytes  []byte
		}
	}
	if err := json.Unmarshal([]byte(mustCriserver(t, "diff", "--json", "--root", root, "--name", "writer", "--pod", "e2e/"+e.podCf.Metadata.Name)), &js); err != nil {
		t.Fatal(err)
	}
	var fromJSON []string
	for _, c := range js.Changes {
		p := c.Path
		if c.PathBytes != nil {
			p = string(c.PathBytes)
		}
		fromJSON = append(fromJSON, c.Kind+" "+p)
	}
	wantExact := slices.Clone(want)
	wantExact[slices.Index(want, `A /bad\xff`)] = "A /bad\xff"
	wantExact[slices.Index(want, `A /odd\nname`)] = "A /odd\nname"
	if js.ContainerID != id || !slices.Equal(fromJSON, wantExact) {
		t.Errorf("diff --json --name writer --pod: container %s, changes %q; want %s, %q", js.ContainerID, fromJSON, id, wantExact)
	}

	df := checkDfAgainstDu(t, root)
	if len(df.Containers) != 1 || df.Containers[0].ID != id || df.Containers[0].State != "running" || df.Containers[0].Name != "writer" {
		t.Fatalf("df containers = %+v", df.Containers)
	}
	w := df.Containers[0].Writable.Bytes
	// The 64 KiB file once for its two names; the 100 MB sparse file's
	// holes not at all; the rest is a few small files.
	if w < 64<<10 || w > 64<<10+64<<10 {
		t.Errorf("writable layer = %d bytes; want 64 KiB for the hard-linked file plus a few blocks", w)
	}
	im, ctr := df.row("Images"), df.row("Containers")
	var otherUnique int64
	for _, i := range df.Images {
		if i.Containers == 0 && i.Unique > 0 {
			otherUnique += i.Unique
		}
	}
	// busybox's one layer is app's base: in use. other's own layer is not.
	if im.Count != 3 || im.Active != 1 || otherUnique == 0 || im.Reclaimable != otherUnique || im.Shared == 0 {
		t.Errorf("Images row %+v; want 3 images, 1 active, the base shared, reclaimable = other's unique %d", im, otherUnique)
	}
	if ctr.Count != 1 || ctr.Active != 1 || ctr.Size != w || ctr.Reclaimable != 0 {
		t.Errorf("Containers row %+v", ctr)
	}
	t.Logf("$ criserver df\n%s", mustCriserver(t, "df", "--root", root))
	verbose := mustCriserver(t, "df", "-v", "--root", root)
	for _, s := range []string{"Images:", "Containers:", "Layers:", id[:12], "writer", "running"} {
		if !strings.Contains(verbose, s) {
			t.Errorf("df -v lacks %q:\n%s", s, verbose)
		}
	}

	// Verbose ContainerStatus carries the refresher's figure: the same walk.
	waitWritableInfo(t, e, id, w)

	// After the container exits: the same changes.
	if _, err := e.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSpace(mustCriserver(t, "diff", "--root", root, id)), "\n"); !slices.Equal(got, want) {
		t.Errorf("criserver diff of an exited container:\n got %q\nwant %q", got, want)
	}
	if c := runDf(t, root).row("Containers"); c.Active != 0 || c.Reclaimable != w {
		t.Errorf("Containers row after exit %+v; want none active, %d reclaimable", c, w)
	}

	// With the daemon stopped: the same, and df still equals du.
	e.d.Stop(t)
	if got := strings.Split(strings.TrimSpace(mustCriserver(t, "diff", "--root", root, id)), "\n"); !slices.Equal(got, want) {
		t.Errorf("criserver diff with the daemon stopped:\n got %q\nwant %q", got, want)
	}
	checkDfAgainstDu(t, root)
	e.d.Start(t)

	if _, err := e.d.Runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := criserverCmd(t, "diff", "--root", root, id); code != 1 || !strings.Contains(errOut, "no container") {
		t.Errorf("diff of a removed container: exit %d, %q; want 1 and a message naming it", code, errOut)
	}
	if _, errOut, code := criserverCmd(t, "df", "--root", e.d.Dir); code != 1 || !strings.Contains(errOut, "not a criserver store") {
		t.Errorf("df of a directory that is no store: exit %d, %q", code, errOut)
	}
}

// waitWritableInfo waits until verbose ContainerStatus reports want bytes
// for the writable layer (the refresher measures running containers every
// few seconds).
func waitWritableInfo(t *testing.T, e *ctrEnv, id string, want int64) {
	t.Helper()
	var last string
	if framework.Poll(20*time.Second, func() bool {
		resp, err := e.d.Runtime.ContainerStatus(framework.Ctx(t), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			WritableLayer *struct{ UsedBytes, InodesUsed int64 } `json:"writableLayer"`
		}
		last = resp.Info["info"]
		if err := json.Unmarshal([]byte(last), &info); err != nil {
			t.Fatal(err)
		}
		return info.WritableLayer != nil && info.WritableLayer.UsedBytes == want && info.WritableLayer.InodesUsed > 0
	}) {
		return
	}
	t.Errorf("verbose ContainerStatus never showed the writable layer at %d bytes; last info %s", want, last)
}

// timedCriserver runs criserver and logs its output and its times the way
// time(1) prints them.
func timedCriserver(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := framework.Binary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	out, err := cmd.Output()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("criserver %v: %v: %s", args, err, errb.String())
	}
	t.Logf("$ time criserver %s\n%s\nreal %v  user %v  sys %v", strings.Join(args, " "), out,
		elapsed.Round(time.Millisecond), cmd.ProcessState.UserTime().Round(time.Millisecond), cmd.ProcessState.SystemTime().Round(time.Millisecond))
	return string(out)
}

// TestStorageViewsAt20Containers runs diff and df on a node with 20
// running containers, each of which wrote files of its own, and logs their
// output and run time (go test -v shows them).
func TestStorageViewsAt20Containers(t *testing.T) {
	const n = 20
	e := newCtrEnv(t)
	ids := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("w%02d", i)
		ids[i] = e.run(t, e.config(name, fmt.Sprintf(
			"dd if=/dev/urandom of=/data-%s bs=4096 count=%d 2>/dev/null && rm /etc/group && echo > /done && exec sleep 3600", name, i+1)))
	}
	for i, id := range ids {
		want := []string{fmt.Sprintf("A /data-w%02d", i), "A /done", "C /etc", "D /etc/group", "A /etc/hostname", "A /etc/hosts", "A /etc/resolv.conf"}
		var got []string
		framework.Poll(30*time.Second, func() bool {
			got = strings.Split(strings.TrimSpace(mustCriserver(t, "diff", "--root", e.d.Root, id)), "\n")
			return slices.Contains(got, "A /done")
		})
		if !slices.Equal(got, want) {
			t.Errorf("diff of container %d:\n got %q\nwant %q", i, got, want)
		}
	}
	df := checkDfAgainstDu(t, e.d.Root)
	if c := df.row("Containers"); c.Count != n || c.Active != n {
		t.Errorf("Containers row %+v; want %d, all active", c, n)
	}
	for _, c := range df.Containers {
		i := slices.Index(ids, c.ID)
		if want := int64(4096 * (i + 1)); c.Writable.Bytes < want || c.Writable.Bytes > want+64<<10 {
			t.Errorf("container %d writable %d bytes; want its %d bytes of data plus a few blocks", i, c.Writable.Bytes, want)
		}
	}
	timedCriserver(t, "diff", "--root", e.d.Root, ids[n-1])
	timedCriserver(t, "df", "--root", e.d.Root)
	timedCriserver(t, "df", "-v", "--root", e.d.Root)
	timedCriserver(t, "df", "--json", "--root", e.d.Root)
}

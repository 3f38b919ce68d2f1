package e2e

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/criserver/criserver/test/e2e/framework"
)

// The registries critest v1.37.0 pulls from (pkg/validate, pkg/framework,
// pkg/benchmark). The harness serves all of them from one local registry,
// each under a repository path named after it.
var critestRegistries = []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io", "public.ecr.aws"}

// critestImage is one repository critest pulls, with the tags it uses.
type critestImage struct {
	repo  string // upstream name, e.g. registry.k8s.io/e2e-test-images/busybox
	tags  []string
	build func(t *testing.T, b *critestBuilder) *framework.Image
}

// critestImages are the images of the validation suite, each built with
// what its specs look at: commands, users, files, distinct or shared IDs.
func critestImages() []critestImage {
	const e2e = "registry.k8s.io/e2e-test-images/"
	const staging = "gcr.io/k8s-staging-cri-tools/"
	imgs := []critestImage{
		// The default container image: echo, sleep, top, ls, pgrep, hostname...
		{e2e + "busybox", []string{"1.29-2"}, busybox},
		// Specs read /var/run/nginx.pid, look for "master process" in
		// /proc/1/cmdline and run pidof nginx: Debian's nginx, port 80.
		{e2e + "nginx", []string{"1.14-2"}, nginxImage(80)},
		// images/hostnet-nginx: nginx on port 12003, run on the host network.
		{staging + "hostnet-nginx-" + goruntime.GOARCH, []string{"latest"}, nginxImage(12003)},
		// The multi-container specs fetch / on port 80 and look for "httpd"
		// in its log: busybox's httpd, which announces itself first.
		{e2e + "httpd", []string{"2.4.39-4"}, httpdImage},
		// A setuid-root program printing its effective UID.
		{e2e + "nonewprivs", []string{"1.3"}, nonewprivsImage},
		// Pulled from two registries: one image, two RepoTags.
		{"registry.k8s.io/pause", []string{"3.9"}, pauseImage},
		{"k8s.gcr.io/pause", []string{"3.9"}, pauseImage},
		// images/image-user: USER as ImageStatus reports it.
		{staging + "test-image-user-uid", []string{"latest"}, userImage("1002")},
		{staging + "test-image-user-username", []string{"latest"}, userImage("www-data")},
		{staging + "test-image-user-uid-group", []string{"latest"}, userImage("1003:1004")},
		{staging + "test-image-user-username-group", []string{"latest"}, userImage("www-data:1004")},
		// images/image-predefined-group: user 1000 in group 50000.
		{staging + "test-image-predefined-group", []string{"latest"}, predefinedGroupImage},
		// images/image-test: busybox plus a file named after the image, so
		// that different names are different images...
		{staging + "test-image-latest", []string{"latest"}, markedImage("test-image-latest")},
		{staging + "test-image-1", []string{"latest"}, markedImage("test-image-1")},
		{staging + "test-image-2", []string{"latest"}, markedImage("test-image-2")},
		{staging + "test-image-3", []string{"latest"}, markedImage("test-image-3")},
		{staging + "test-image-tag", []string{"test"}, markedImage("test")},
		{staging + "test-image-tag", []string{"all"}, markedImage("all")},
		// ...except test-image-tags, one image under three tags.
		{staging + "test-image-tags", []string{"1", "2", "3"}, markedImage("same-image")},
	}
	// The benchmark's image listing: busybox builds of several C
	// libraries upstream, distinct images here too.
	for _, tag := range []string{"1.35.0-glibc", "1-uclibc", "1", "1-glibc", "1-musl"} {
		imgs = append(imgs, critestImage{"public.ecr.aws/docker/library/busybox", []string{tag}, markedImage("busybox-" + tag)})
	}
	return imgs
}

// critestBuilder holds what several images share, built once per run.
type critestBuilder struct {
	cache string // downloaded Debian packages, kept between runs
	tmp   string
	debs  map[string]string // package set → extracted root
	bins  map[string][]byte // testdata program → static binary
}

// pushCritestImages builds every image and pushes each tag to reg under
// its upstream repository path.
func pushCritestImages(t *testing.T, reg *framework.Registry, cache string) {
	t.Helper()
	b := &critestBuilder{cache: cache, tmp: t.TempDir(), debs: map[string]string{}, bins: map[string][]byte{}}
	for _, ci := range critestImages() {
		img := ci.build(t, b)
		for _, tag := range ci.tags {
			reg.Push(t, ci.repo, tag, img)
		}
	}
}

// busyboxExtras are the commands specs run that Debian's busybox build
// leaves out, taken from the Debian packages that have them.
var busyboxExtras = []string{"usr/bin/pgrep", "usr/bin/pkill", "usr/bin/ipcs"}

// busybox is the default image: Debian's dynamically linked busybox, whose
// shell runs applets through PATH like upstream's (busybox-static's runs
// them in-process, so a masked /bin/ls would still run), with hard-linked
// applets, plus busyboxExtras and the libraries of all of them.
func busybox(t *testing.T, b *critestBuilder) *framework.Image {
	root := b.debianRoot(t, "busybox")
	bin, err := os.ReadFile(filepath.Join(root, "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	// The package is for this host's release: its libraries are here too.
	list, err := exec.Command(filepath.Join(root, "bin", "busybox"), "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	img := framework.BusyboxImageOf(bin, strings.Fields(string(list)), true)
	img.AddLayer(b.commandsLayer(t, []string{"busybox", "procps", "util-linux"}, busyboxExtras...)...)
	// Nor has it the nmeter applet, which the node e2e suite's container
	// lifecycle specs run for a time with milliseconds: a stand-in.
	img.AddLayer(framework.Entry{Name: "bin/nmeter", Type: tar.TypeReg, Mode: 0o755, Body: b.program(t, "nmeter")})
	return img
}

// commandsLayer is the given files of Debian packages pkgs (paths in the
// packages, such as usr/bin/curl) with every shared library the packages
// need, and the directories that hold them.
func (b *critestBuilder) commandsLayer(t *testing.T, pkgs []string, files ...string) []framework.Entry {
	t.Helper()
	entries, err := framework.DirEntries(b.debianRoot(t, pkgs...))
	if err != nil {
		t.Fatal(err)
	}
	keep := entries[:0]
	for _, e := range entries {
		// bin is a directory of links in the images that use this.
		if (e.Type == tar.TypeDir && e.Name != "bin") || slices.Contains(files, e.Name) || isLibrary(e.Name) {
			keep = append(keep, e)
		}
	}
	return keep
}

func isLibrary(name string) bool {
	for _, dir := range []string{"lib/", "lib64/", "usr/lib/"} {
		if strings.HasPrefix(name, dir) {
			return true
		}
	}
	return false
}

// Upstream busybox's users and groups that the images rely on (www-data).
const (
	critestPasswd = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n" +
		"nobody:x:65534:65534:nobody:/home:/bin/false\n"
	critestGroup = "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"
)

func userImage(user string) func(*testing.T, *critestBuilder) *framework.Image {
	return func(t *testing.T, _ *critestBuilder) *framework.Image {
		img := framework.BusyboxImage(t)
		img.AddLayer(framework.File("etc/passwd", critestPasswd, 0o644), framework.File("etc/group", critestGroup, 0o644))
		img.Config.User = user
		return img
	}
}

func predefinedGroupImage(t *testing.T, _ *critestBuilder) *framework.Image {
	img := framework.BusyboxImage(t)
	img.AddLayer(
		framework.File("etc/passwd", critestPasswd+"default-user:x:1000:1000::/home/default-user:/bin/sh\n", 0o644),
		framework.File("etc/group", critestGroup+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n", 0o644),
		framework.Entry{Name: "home/default-user", Type: tar.TypeDir, Mode: 0o755, UID: 1000, GID: 1000},
	)
	img.Config.User = "1000"
	return img
}

// markedImage is busybox plus an empty file /name.
func markedImage(name string) func(*testing.T, *critestBuilder) *framework.Image {
	return func(t *testing.T, _ *critestBuilder) *framework.Image {
		img := framework.BusyboxImage(t)
		img.AddLayer(framework.File(name, "", 0o644))
		return img
	}
}

func httpdImage(t *testing.T, _ *critestBuilder) *framework.Image {
	img := framework.BusyboxImage(t)
	img.AddLayer(framework.Dir("htdocs", 0o755), framework.File("htdocs/index.html", "<html><body><h1>It works!</h1></body></html>\n", 0o644))
	img.Config.Cmd = []string{"sh", "-c", "echo 'httpd: serving /htdocs on port 80'; exec httpd -f -v -p 80 -h /htdocs"}
	img.Config.ExposedPorts = map[string]struct{}{"80/tcp": {}}
	return img
}

func nonewprivsImage(t *testing.T, b *critestBuilder) *framework.Image {
	img := framework.BusyboxImage(t)
	img.AddLayer(framework.Dir("usr", 0o755), framework.Dir("usr/local", 0o755), framework.Dir("usr/local/bin", 0o755),
		framework.Entry{Name: "usr/local/bin/nnp", Type: tar.TypeReg, Mode: 0o4755, Body: b.program(t, "nnp")})
	img.Config.Cmd = []string{"/usr/local/bin/nnp"}
	return img
}

func pauseImage(t *testing.T, b *critestBuilder) *framework.Image {
	img := &framework.Image{Config: ocispec.ImageConfig{Entrypoint: []string{"/pause"}}}
	img.AddLayer(framework.Entry{Name: "pause", Type: tar.TypeReg, Mode: 0o755, Body: b.program(t, "pause")})
	return img
}

// nginxConf runs nginx in the foreground-friendly way the upstream
// images do, logging to the container's output.
const nginxConf = `user nobody nogroup;
pid /var/run/nginx.pid;
error_log stderr;
events {}
http {
	include /etc/nginx/mime.types;
	access_log /dev/stdout;
	server {
		listen %d;
		root /usr/share/nginx/html;
		index index.html index.nginx-debian.html;
	}
}
`

// nginxImage is busybox, then Debian's nginx and the libraries it links,
// then a configuration listening on port.
func nginxImage(port int) func(*testing.T, *critestBuilder) *framework.Image {
	return func(t *testing.T, b *critestBuilder) *framework.Image {
		entries, err := framework.DirEntries(b.debianRoot(t, "nginx", "nginx-common"))
		if err != nil {
			t.Fatal(err)
		}
		img := framework.BusyboxImage(t)
		img.AddLayer(entries...)
		img.AddLayer(
			framework.File("etc/nginx/nginx.conf", fmt.Sprintf(nginxConf, port), 0o644),
			framework.Dir("var/run", 0o755), framework.Dir("var/log", 0o755), framework.Dir("var/log/nginx", 0o755),
			framework.Dir("var/lib", 0o755), framework.Dir("var/lib/nginx", 0o755),
		)
		img.Config.Cmd = []string{"nginx", "-g", "daemon off;"}
		img.Config.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", port): {}}
		img.Config.StopSignal = "SIGQUIT"
		return img
	}
}

// program builds test/e2e/testdata/critest/<name> as a static binary.
func (b *critestBuilder) program(t *testing.T, name string) []byte {
	t.Helper()
	if bin, ok := b.bins[name]; ok {
		return bin
	}
	out := filepath.Join(b.tmp, name)
	cmd := exec.Command(goTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/critest/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, msg)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b.bins[name] = bin
	return bin
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// debianRoot unpacks pkgs and the shared libraries they need (their
// dependencies in Debian's "libs" section, recursively) into a directory,
// without documentation. The .deb files are downloaded once into the
// cache with apt-get download.
func (b *critestBuilder) debianRoot(t *testing.T, pkgs ...string) string {
	t.Helper()
	key := strings.Join(pkgs, ",")
	if root, ok := b.debs[key]; ok {
		return root
	}
	closure, err := libraryClosure(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(b.cache, "debs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(b.tmp, fmt.Sprintf("debroot-%d", len(b.debs)))
	for _, p := range closure {
		deb, err := downloadDeb(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
	}
	for _, d := range []string{"usr/share/doc", "usr/share/man", "usr/share/lintian", "usr/share/locale"} {
		if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	b.debs[key] = root
	return root
}

// libraryClosure is pkgs plus, recursively, the dependencies of each that
// are shared libraries (Section: libs): what the binaries need to run,
// without the tools that maintainer scripts use.
func libraryClosure(pkgs []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	queue := append([]string(nil), pkgs...)
	roots := len(pkgs)
	for i := 0; len(queue) > 0; i++ {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		section, deps, err := aptShow(p)
		if err != nil {
			return nil, err
		}
		if i >= roots && section != "libs" {
			continue
		}
		out = append(out, p)
		queue = append(queue, deps...)
	}
	return out, nil
}

// aptShow returns the section of the candidate version of pkg and the
// packages it depends on (Depends and Pre-Depends, first alternatives).
// A machine whose package lists were never fetched gets them first.
func aptShow(pkg string) (string, []string, error) {
	out, err := exec.Command("apt-cache", "show", "--no-all-versions", pkg).Output()
	if err != nil || len(out) == 0 {
		if msg, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("apt-get update: %v\n%s", err, msg)
		}
		if out, err = exec.Command("apt-cache", "show", "--no-all-versions", pkg).Output(); err != nil {
			return "", nil, fmt.Errorf("apt-cache show %s: %w", pkg, err)
		}
	}
	var section string
	var deps []string
	for _, line := range strings.Split(string(out), "\n") {
		key, val, ok := strings.Cut(line, ": ")
		switch {
		case !ok:
		case key == "Section":
			section = val
		case key == "Depends" || key == "Pre-Depends":
			for _, dep := range strings.Split(val, ",") {
				// "libssl3 (>= 3.0.0)" or "a | b": the first alternative.
				alt, _, _ := strings.Cut(dep, "|")
				if f := strings.Fields(alt); len(f) > 0 {
					name, _, _ := strings.Cut(f[0], ":")
					deps = append(deps, name)
				}
			}
		}
	}
	return section, deps, nil
}

// downloadDeb returns the cached .deb of pkg, downloading it if missing.
func downloadDeb(dir, pkg string) (string, error) {
	if m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb")); len(m) == 1 {
		return m[0], nil
	}
	cmd := exec.Command("apt-get", "download", "-q", pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %v\n%s", pkg, err, out)
	}
	m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(m) != 1 {
		return "", fmt.Errorf("apt-get download %s: want one .deb, found %v", pkg, m)
	}
	return m[0], nil
}

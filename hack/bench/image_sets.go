package main

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// benchImages are the references of the images the workload uses, all in
// the harness's local registry.
type benchImages struct {
	Busybox string // small image the workload's containers run
	Pause   string // containerd's sandbox image
	Big     string // >=100 MB multi-layer image (cold pull)
	BigApp  string // Big plus one layer (warm pull)
	BigSize int64  // unpacked bytes of Big
	BigN    int    // layers of Big
}

// buildAndPush builds the test images (cached under cacheDir) and pushes
// them to reg.
func buildAndPush(ctx context.Context, reg *registry, cacheDir, pauseSrc string, withBig bool) (benchImages, error) {
	var out benchImages
	bb, err := cachedImage(filepath.Join(cacheDir, "images", "busybox"), buildBusybox)
	if err != nil {
		return out, fmt.Errorf("build busybox image: %w", err)
	}
	pause, err := cachedImage(filepath.Join(cacheDir, "images", "pause"), func(dir string) (*builtImage, error) {
		return buildPause(ctx, dir, pauseSrc)
	})
	if err != nil {
		return out, fmt.Errorf("build pause image: %w", err)
	}
	if out.Busybox, err = reg.push(ctx, "bench/busybox", "1", bb); err != nil {
		return out, err
	}
	if out.Pause, err = reg.push(ctx, "bench/pause", "1", pause); err != nil {
		return out, err
	}
	if !withBig {
		return out, nil
	}
	rootfs, err := debootstrapRootfs(ctx, cacheDir)
	if err != nil {
		return out, err
	}
	big, err := cachedImage(filepath.Join(cacheDir, "images", "big"), func(dir string) (*builtImage, error) {
		return buildRootfsImage(dir, rootfs)
	})
	if err != nil {
		return out, fmt.Errorf("build big image: %w", err)
	}
	app, err := cachedImage(filepath.Join(cacheDir, "images", "big-app"), func(dir string) (*builtImage, error) {
		return buildAppImage(dir, big)
	})
	if err != nil {
		return out, fmt.Errorf("build big-app image: %w", err)
	}
	if out.Big, err = reg.push(ctx, "bench/big", "1", big); err != nil {
		return out, err
	}
	if out.BigApp, err = reg.push(ctx, "bench/big-app", "1", app); err != nil {
		return out, err
	}
	out.BigSize, out.BigN = big.UnpackedSize(), len(big.Layers)
	return out, nil
}

// buildBusybox makes a one-layer image from Debian's busybox-static: the
// binary, a link per applet, and minimal passwd/group files.
func buildBusybox(dir string) (*builtImage, error) {
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox-static: %w", err)
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	w, err := newLayerWriter(filepath.Join(dir, "layer.tmp"))
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"bin", "etc", "root", "dev", "proc", "sys", "run"} {
		if err := w.addDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := w.addDir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if err := w.addFile("bin/busybox", 0o755, bin); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := w.addSymlink("bin/"+applet, "busybox"); err != nil {
			return nil, err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\nnogroup:x:65534:\n"
	if err := w.addFile("etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, err
	}
	if err := w.addFile("etc/group", 0o644, []byte(group)); err != nil {
		return nil, err
	}
	layer, err := w.close(dir)
	if err != nil {
		return nil, err
	}
	return assemble(dir, ocispec.ImageConfig{Env: []string{defaultPath}, Cmd: []string{"sh"}}, []blob{layer})
}

// buildPause compiles hack/images/pause.c statically into a one-file image.
func buildPause(ctx context.Context, dir, src string) (*builtImage, error) {
	bin := filepath.Join(dir, "pause.bin")
	out, err := exec.CommandContext(ctx, "cc", "-static", "-Os", "-s", "-o", bin, src).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w: %s", src, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	w, err := newLayerWriter(filepath.Join(dir, "layer.tmp"))
	if err != nil {
		return nil, err
	}
	if err := w.addFile("pause", 0o755, data); err != nil {
		return nil, err
	}
	layer, err := w.close(dir)
	if err != nil {
		return nil, err
	}
	return assemble(dir, ocispec.ImageConfig{Entrypoint: []string{"/pause"}}, []blob{layer})
}

// debootstrapRootfs returns a Debian bookworm minbase rootfs, made once
// and kept in cacheDir.
func debootstrapRootfs(ctx context.Context, cacheDir string) (string, error) {
	dst := filepath.Join(cacheDir, "rootfs-bookworm-minbase")
	if _, err := os.Stat(filepath.Join(dst, "usr", "bin")); err == nil {
		return dst, nil
	}
	tmp := dst + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	klog.InfoS("Running debootstrap (once; cached)", "dir", dst)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "bookworm", tmp, "http://deb.debian.org/debian")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap: %w: %s", err, tail(out, 2000))
	}
	return dst, os.Rename(tmp, dst)
}

// rootfsLayers splits a rootfs into layers by path, largest trees first,
// so that the image has several layers of useful size.
var rootfsLayers = []string{"usr/lib/x86_64-linux-gnu/", "usr/share/", "usr/", ""}

// rootfsSkipped are debootstrap's download leftovers, which images leave
// out (their directories stay).
var rootfsSkipped = []string{"var/cache/apt/archives/", "var/lib/apt/lists/"}

func rootfsLayerOf(rel string, isDir bool) int {
	key := rel
	if isDir {
		key += "/"
	}
	for i, p := range rootfsLayers {
		if strings.HasPrefix(key, p) {
			return i
		}
	}
	return len(rootfsLayers) - 1
}

// buildRootfsImage packs a rootfs into len(rootfsLayers) layers. Device
// nodes, sockets and fifos are left out (runtimes provide /dev).
func buildRootfsImage(dir, rootfs string) (*builtImage, error) {
	writers := make([]*layerWriter, len(rootfsLayers))
	for i := range writers {
		w, err := newLayerWriter(filepath.Join(dir, fmt.Sprintf("layer%d.tmp", i)))
		if err != nil {
			return nil, err
		}
		writers[i] = w
	}
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, p)
		if rel == "." {
			return nil
		}
		t := d.Type()
		if t&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 {
			return nil
		}
		for _, skip := range rootfsSkipped {
			if strings.HasPrefix(rel, skip) && !d.IsDir() {
				return nil
			}
		}
		return writers[rootfsLayerOf(rel, d.IsDir())].addFromDisk(rootfs, rel)
	})
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", rootfs, err)
	}
	layers := make([]blob, len(writers))
	for i, w := range writers {
		if layers[i], err = w.close(dir); err != nil {
			return nil, err
		}
	}
	return assemble(dir, ocispec.ImageConfig{Env: []string{defaultPath}, Cmd: []string{"/bin/bash"}}, layers)
}

// buildAppImage is base plus one layer of 8 MiB incompressible data: the
// warm pull fetches and unpacks only that layer.
func buildAppImage(dir string, base *builtImage) (*builtImage, error) {
	data := make([]byte, 8<<20)
	rng := rand.NewChaCha8([32]byte{'c', 'r', 'i', 's', 'e', 'r', 'v', 'e', 'r'})
	_, _ = rng.Read(data) // ChaCha8's Read never fails
	w, err := newLayerWriter(filepath.Join(dir, "layer.tmp"))
	if err != nil {
		return nil, err
	}
	if err := w.addDir("opt", 0o755); err != nil {
		return nil, err
	}
	if err := w.addDir("opt/app", 0o755); err != nil {
		return nil, err
	}
	if err := w.addFile("opt/app/data.bin", 0o644, data); err != nil {
		return nil, err
	}
	layer, err := w.close(dir)
	if err != nil {
		return nil, err
	}
	layers := append(append([]blob{}, base.Layers...), layer)
	return assemble(dir, ocispec.ImageConfig{Env: []string{defaultPath}, Cmd: []string{"/bin/bash"}}, layers)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

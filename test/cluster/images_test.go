package cluster

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/criserver/criserver/test/e2e/framework"
)

// The suite's images, built from Debian's busybox-static and imported into
// every node (pods use imagePullPolicy: Never: no registry is involved).
const (
	// busyboxImage runs every test pod: sh, httpd, nc, nslookup, tar...
	busyboxImage = "criserver.test/busybox:1"
	// gcImage is never run: the image GC test expects the kubelet to
	// remove it.
	gcImage = "criserver.test/gc-victim:1"
)

// imageArchives builds the suite's images as archives in dir and returns
// their paths.
func imageArchives(dir string) ([]string, error) {
	busybox, err := framework.HostBusyboxImage()
	if err != nil {
		return nil, err
	}
	victim, err := framework.HostBusyboxImage()
	if err != nil {
		return nil, err
	}
	// Its own top layer makes it an image of its own, with its own ID.
	victim.AddLayer(framework.File("gc-victim", "remove me\n", 0o644))
	var paths []string
	for _, i := range []struct {
		name, tag string
		img       *framework.Image
	}{{busyboxImage, "1", busybox}, {gcImage, "1", victim}} {
		b, err := i.img.Build()
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, strings.ReplaceAll(filepath.Base(i.name), ":", "-")+".tar")
		if err := b.WriteOCIArchive(p, i.name, i.tag); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// loadImages imports the archives into every node.
func (c *Cluster) loadImages(archives []string) error {
	for _, a := range archives {
		if _, err := c.run(context.Background(), nil, "bash", c.Script, "load", a); err != nil {
			return err
		}
	}
	return nil
}

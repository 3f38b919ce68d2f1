package cluster

import (
	"context"
	"path/filepath"

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
	for name, img := range map[string]*framework.Image{
		busyboxImage: busybox,
		gcImage:      victim,
	} {
		p := filepath.Join(dir, filepath.Base(name)+".tar")
		if err := framework.WriteArchive(p, name, img); err != nil {
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

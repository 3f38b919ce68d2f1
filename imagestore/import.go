package imagestore

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	dockerarchive "go.podman.io/image/v5/docker/archive"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/pkg/compression"
	"go.podman.io/image/v5/types"
	"k8s.io/klog/v2"
)

// ErrInvalidArchive is returned for an import that is not a docker-archive
// or oci-archive tarball, or whose images cannot be named.
var ErrInvalidArchive = errors.New("invalid image archive")

// containerdNameAnnotation is where `ctr export` and BuildKit record an
// image's full name in an OCI archive; the OCI ref.name annotation often
// holds only a tag.
const containerdNameAnnotation = "io.containerd.image.name"

// archiveImage is one image of an archive and the names it is stored under.
type archiveImage struct {
	ref   types.ImageReference
	names []imageRef
}

// Import loads every image of a docker-archive or oci-archive tarball
// (optionally compressed) into the store, as a pull would, under the names
// the archive gives it. A non-empty name names the archive's only image
// instead. The archive is spooled to a temporary file under the store, so
// a crash leaves nothing that the next start does not remove.
func (s *Store) Import(ctx context.Context, archive io.Reader, name string) ([]Image, error) {
	dir, err := os.MkdirTemp(s.layerDir, tmpPrefix+"import-")
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "archive.tar")
	isOCI, err := spoolArchive(archive, path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	var imgs []archiveImage
	if isOCI {
		imgs, err = listOCIArchive(path, filepath.Join(dir, "oci"))
	} else {
		imgs, err = listDockerArchive(path)
	}
	if err == nil {
		err = nameArchiveImages(imgs, name)
	}
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	out := make([]Image, 0, len(imgs))
	for _, ai := range imgs {
		img, err := s.importImage(ctx, ai)
		if err != nil {
			return out, fmt.Errorf("import %s: %w", ai.names[0], err)
		}
		out = append(out, img)
	}
	return out, nil
}

// spoolArchive writes the decompressed archive to path and reports
// whether it is an OCI layout (oci-layout and index.json at its top) or
// else a docker-archive (manifest.json).
func spoolArchive(r io.Reader, path string) (isOCI bool, err error) {
	dr, _, err := compression.AutoDecompress(r)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrInvalidArchive, err)
	}
	defer dr.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return false, err
	}
	defer f.Close()
	seen := map[string]bool{}
	tr := tar.NewReader(io.TeeReader(dr, f))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("%w: read tar: %v", ErrInvalidArchive, err)
		}
		seen[strings.TrimPrefix(filepath.Clean("/"+hdr.Name), "/")] = true
	}
	// The tar reader stops at the end-of-archive marker; the padding after it
	// belongs in the file too.
	if _, err := io.Copy(io.Discard, io.TeeReader(dr, f)); err != nil {
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	switch {
	case seen[ocispec.ImageLayoutFile] && seen[ocispec.ImageIndexFile]:
		return true, nil
	case seen["manifest.json"]:
		return false, nil
	}
	return false, fmt.Errorf("%w: neither an OCI layout (oci-layout, index.json) nor a docker archive (manifest.json)", ErrInvalidArchive)
}

// listDockerArchive lists a docker-archive's images with their RepoTags.
func listDockerArchive(path string) ([]archiveImage, error) {
	rd, err := dockerarchive.NewReader(&types.SystemContext{}, path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArchive, err)
	}
	defer rd.Close()
	groups, err := rd.List()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArchive, err)
	}
	imgs := make([]archiveImage, 0, len(groups))
	for i, refs := range groups {
		// By index, not the reader's references: those die with the reader.
		ref, err := dockerarchive.NewIndexReference(path, i)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidArchive, err)
		}
		ai := archiveImage{ref: ref}
		for _, ref := range refs {
			if named := ref.DockerReference(); named != nil {
				r, err := parseRef(named.String())
				if err != nil {
					return nil, err
				}
				ai.names = append(ai.names, r)
			}
		}
		imgs = append(imgs, ai)
	}
	return imgs, nil
}

// listOCIArchive unpacks an OCI archive into dir and lists its images,
// each named by its containerd name annotation, else by a ref.name that is
// a full reference (one that is only a tag names nothing).
func listOCIArchive(path, dir string) ([]archiveImage, error) {
	if err := untar(path, dir); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArchive, err)
	}
	list, err := layout.List(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArchive, err)
	}
	imgs := make([]archiveImage, 0, len(list))
	for i, l := range list {
		// By index: a ref.name that is a full reference is not one the OCI
		// transport accepts as an image name.
		ref, err := layout.NewIndexReference(dir, i)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidArchive, err)
		}
		ai := archiveImage{ref: ref}
		ann := l.ManifestDescriptor.Annotations
		n := ann[containerdNameAnnotation]
		if rn := ann[ocispec.AnnotationRefName]; n == "" && strings.ContainsAny(rn, "/:") {
			n = rn
		}
		if n != "" {
			r, err := parseRef(n)
			if err != nil {
				return nil, err
			}
			ai.names = append(ai.names, r)
		}
		imgs = append(imgs, ai)
	}
	return imgs, nil
}

// nameArchiveImages applies an explicit name, and refuses an image that
// would be stored without one: the kubelet could never refer to it.
func nameArchiveImages(imgs []archiveImage, name string) error {
	if len(imgs) == 0 {
		return fmt.Errorf("%w: no images", ErrInvalidArchive)
	}
	if name != "" {
		if len(imgs) > 1 {
			return fmt.Errorf("%w: a name was given but the archive holds %d images", ErrInvalidArchive, len(imgs))
		}
		r, err := parseRef(name)
		if err != nil {
			return err
		}
		imgs[0].names = []imageRef{r}
		return nil
	}
	for i, ai := range imgs {
		if len(ai.names) == 0 {
			return fmt.Errorf("%w: image %d of the archive has no name; give one", ErrInvalidArchive, i)
		}
	}
	return nil
}

// importImage stores one archive image under each of its names.
func (s *Store) importImage(ctx context.Context, ai archiveImage) (Image, error) {
	sys := &types.SystemContext{OSChoice: "linux", ArchitectureChoice: goruntime.GOARCH}
	src, err := ai.ref.NewImageSource(ctx, sys)
	if err != nil {
		return Image{}, fmt.Errorf("%w: %v", ErrInvalidArchive, err)
	}
	defer src.Close()
	var img Image
	for _, r := range ai.names {
		if img, err = s.copyImage(ctx, src, sys, r); err != nil {
			return Image{}, err
		}
	}
	klog.InfoS("Imported image", "id", img.ID, "names", img.RepoTags)
	return img, nil
}

// untar unpacks the directories and regular files of an OCI archive into
// dir; anything else (links, devices) has no place in an OCI layout. The
// os.Root keeps every name inside dir.
func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(filepath.Clean("/"+hdr.Name), "/")
		if name == "" {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o700)
		case tar.TypeReg:
			err = untarFile(root, name, tr)
		default:
			err = fmt.Errorf("%s: unexpected entry type %q in an OCI layout", hdr.Name, hdr.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

func untarFile(root *os.Root, name string, r io.Reader) error {
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

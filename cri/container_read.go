package cri

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/atomicfile"
)

// StoredContainer is what a container's record under a root says of it.
type StoredContainer struct {
	ID, PodID, Name string
	Attempt         uint32
	// Image is the reference the container was created with.
	Image string
	// State is the state the daemon last recorded.
	State runtime.ContainerState
}

// ReadContainers reads the container records under root for tools that
// run beside the daemon: it changes nothing, and skips a container
// removed while it reads.
func ReadContainers(root string) ([]StoredContainer, error) {
	paths, err := atomicfile.ListRecords(filepath.Join(root, "containers"), legacyRecordName)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // no container was ever made
	}
	if err != nil {
		return nil, fmt.Errorf("read container records: %w", err)
	}
	var out []StoredContainer
	for _, path := range paths {
		var f recordFile
		if err := atomicfile.ReadJSON(path, &f); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read container record: %w", err)
		}
		c, err := recordFromFile(&f)
		if err != nil {
			return nil, err
		}
		md := c.Config.GetMetadata()
		out = append(out, StoredContainer{
			ID: c.ID, PodID: c.PodID, Name: md.GetName(), Attempt: md.GetAttempt(),
			Image: c.Image.Ref, State: c.State(),
		})
	}
	slices.SortFunc(out, func(a, b StoredContainer) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

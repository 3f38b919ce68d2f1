package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/criserver/criserver/atomicfile"
)

// PodName names one pod as its record under a root does.
type PodName struct {
	ID, Name, Namespace string
}

// ReadPodNames reads the pod records under root for tools that run beside
// the daemon: it changes nothing, and skips a pod removed while it reads.
func ReadPodNames(root string) ([]PodName, error) {
	paths, err := atomicfile.ListRecords(filepath.Join(root, "pods"), legacyRecordName)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // no pod was ever run
	}
	if err != nil {
		return nil, fmt.Errorf("read pod records: %w", err)
	}
	var out []PodName
	for _, path := range paths {
		var r record
		if err := atomicfile.ReadJSON(path, &r); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read pod record: %w", err)
		}
		sb, err := r.sandbox()
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", r.ID, err)
		}
		md := sb.Config.GetMetadata()
		out = append(out, PodName{ID: sb.ID, Name: md.GetName(), Namespace: md.GetNamespace()})
	}
	slices.SortFunc(out, func(a, b PodName) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

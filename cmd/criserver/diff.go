package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/criserver/criserver/cri"
	"github.com/criserver/criserver/imagestore"
	"github.com/criserver/criserver/imagestore/overlay"
	"github.com/criserver/criserver/sandbox"
)

// runDiff is `criserver diff`: what a container changed in its image.
func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newStoreFlags("diff", "diff [--json] [--root DIR] CONTAINER | --name NAME --pod POD", stderr)
	var name, pod string
	f.fs.StringVar(&name, "name", "", "the container's name (its metadata name) instead of an ID; needs --pod")
	f.fs.StringVar(&pod, "pod", "", "with --name: the pod's ID, ID prefix, name or namespace/name")
	pos, err := f.parse(args)
	if err != nil {
		return fail(stderr, usageError{err})
	}
	switch {
	case (name == "") != (pod == ""):
		return fail(stderr, usageError{errors.New("--name and --pod go together")})
	case name == "" && len(pos) != 1, name != "" && len(pos) != 0:
		return fail(stderr, usageError{errors.New("name one container: an ID, a unique ID prefix, or --name NAME --pod POD")})
	}
	v, root, err := f.openView()
	if err != nil {
		return fail(stderr, err)
	}
	var id string
	if name != "" {
		id, err = containerByName(v, root, name, pod)
	} else {
		id, err = v.ResolveContainer(pos[0])
	}
	if err != nil {
		return fail(stderr, err)
	}
	changes, err := v.Diff(ctx, id)
	if err != nil {
		return fail(stderr, err)
	}
	if f.json {
		err = writeJSON(stdout, struct {
			ContainerID string           `json:"containerID"`
			Changes     []overlay.Change `json:"changes"`
		}{id, append([]overlay.Change{}, changes...)})
	} else {
		var b strings.Builder
		for _, c := range changes {
			b.WriteString(c.String())
			b.WriteByte('\n')
		}
		_, err = io.WriteString(stdout, b.String())
	}
	if err != nil {
		return fail(stderr, err)
	}
	return 0
}

// containerByName finds the container named name in the pod named pod;
// of several attempts, the latest.
func containerByName(v *imagestore.View, root, name, pod string) (string, error) {
	pods, err := sandbox.ReadPodNames(root)
	if err != nil {
		return "", err
	}
	podIDs := matchPods(pods, pod)
	if len(podIDs) == 0 {
		return "", fmt.Errorf("no pod %q in %s", pod, root)
	}
	if len(podIDs) > 1 {
		return "", fmt.Errorf("pod %q is ambiguous: %s", pod, strings.Join(podIDs, ", "))
	}
	ctrs, err := cri.ReadContainers(root)
	if err != nil {
		return "", err
	}
	var best *cri.StoredContainer
	for i, c := range ctrs {
		if c.PodID == podIDs[0] && c.Name == name && (best == nil || c.Attempt > best.Attempt) {
			best = &ctrs[i]
		}
	}
	if best == nil {
		return "", fmt.Errorf("no container %q in pod %s", name, podIDs[0])
	}
	return v.ResolveContainer(best.ID)
}

// matchPods returns the IDs of the pods ref names: an ID, a name or
// namespace/name, else a unique ID prefix.
func matchPods(pods []sandbox.PodName, ref string) []string {
	var exact, prefix []string
	for _, p := range pods {
		switch {
		case p.ID == ref, p.Name == ref, p.Namespace+"/"+p.Name == ref:
			exact = append(exact, p.ID)
		case strings.HasPrefix(p.ID, ref):
			prefix = append(prefix, p.ID)
		}
	}
	if len(exact) > 0 {
		slices.Sort(exact)
		return exact
	}
	slices.Sort(prefix)
	return prefix
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

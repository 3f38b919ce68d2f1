package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cri"
	"github.com/criserver/criserver/imagestore"
	"github.com/criserver/criserver/sandbox"
)

// runDf is `criserver df`: what images, containers and layers take on disk.
func runDf(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newStoreFlags("df", "df [-v] [--json] [--root DIR]", stderr)
	var verbose bool
	f.fs.BoolVar(&verbose, "v", false, "list every image, container and layer")
	pos, err := f.parse(args)
	if err != nil {
		return fail(stderr, usageError{err})
	}
	if len(pos) > 0 {
		return fail(stderr, usageError{fmt.Errorf("unexpected argument %q", pos[0])})
	}
	v, root, err := f.openView()
	if err != nil {
		return fail(stderr, err)
	}
	r, err := newDfReport(ctx, v, root)
	if err != nil {
		return fail(stderr, err)
	}
	if f.json {
		err = writeJSON(stdout, r)
	} else {
		err = r.writeText(stdout, verbose)
	}
	if err != nil {
		return fail(stderr, err)
	}
	return 0
}

// dfReport is the df output; its JSON form has every figure in bytes.
type dfReport struct {
	Root       string                      `json:"root"`
	Summary    []imagestore.SummaryRow     `json:"summary"`
	Images     []imagestore.ImageDiskUsage `json:"images"`
	Containers []dfContainer               `json:"containers"`
	Layers     []imagestore.LayerDiskUsage `json:"layers"`
	Other      imagestore.Usage            `json:"other"`
	Total      imagestore.Usage            `json:"total"`
}

// dfContainer is a writable layer with what the container's record says.
type dfContainer struct {
	imagestore.ContainerDiskUsage
	Pod   string `json:"pod,omitempty"` // namespace/name
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
	State string `json:"state"`
}

func newDfReport(ctx context.Context, v *imagestore.View, root string) (*dfReport, error) {
	ctrs, err := cri.ReadContainers(root)
	if err != nil {
		return nil, err
	}
	pods, err := sandbox.ReadPodNames(root)
	if err != nil {
		return nil, err
	}
	du, err := v.DiskUsage(ctx)
	if err != nil {
		return nil, err
	}
	records := map[string]cri.StoredContainer{}
	for _, c := range ctrs {
		records[c.ID] = c
	}
	podNames := map[string]string{}
	for _, p := range pods {
		podNames[p.ID] = p.Namespace + "/" + p.Name
	}
	r := &dfReport{
		Root: root, Images: du.Images, Layers: du.Layers, Other: du.Other, Total: du.Total,
		Summary: du.Summary(func(id string) bool {
			return records[id].State == runtime.ContainerState_CONTAINER_RUNNING
		}),
	}
	for _, c := range du.Containers {
		dc := dfContainer{ContainerDiskUsage: c, State: "unknown"}
		if rec, ok := records[c.ID]; ok {
			dc.Pod, dc.Name, dc.Image = podNames[rec.PodID], rec.Name, rec.Image
			dc.State = strings.ToLower(strings.TrimPrefix(rec.State.String(), "CONTAINER_"))
		}
		r.Containers = append(r.Containers, dc)
	}
	return r, nil
}

// writeText writes the tables at once: a buffer cannot fail half-way,
// so the one write to w is the only error.
func (r *dfReport) writeText(out io.Writer, verbose bool) error {
	w := &bytes.Buffer{}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tTOTAL\tACTIVE\tSIZE\tSHARED\tUNIQUE\tRECLAIMABLE")
	for _, s := range r.Summary {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Type, s.Count, s.Active,
			humanBytes(s.Size), humanBytes(s.Shared), humanBytes(s.Unique), reclaimable(s.Reclaimable, s.Size))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nStore %s: %s in %d inodes (du -sx), of which %s are records, overlay work directories and links\n",
		r.Root, humanBytes(r.Total.Bytes), r.Total.Inodes, humanBytes(r.Other.Bytes))
	if verbose {
		r.writeDetails(w)
	}
	_, err := out.Write(w.Bytes())
	return err
}

// writeDetails is -v: a table of images, of containers and of layers.
func (r *dfReport) writeDetails(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "\nImages:")
	fmt.Fprintln(tw, "IMAGE ID\tTAGS\tSIZE\tSHARED\tUNIQUE\tCONTAINERS")
	for _, im := range r.Images {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", shortID(im.ID), orNone(strings.Join(im.RepoTags, ",")),
			humanBytes(im.Size), humanBytes(im.Shared), humanBytes(im.Unique), im.Containers)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nContainers:")
	fmt.Fprintln(tw, "CONTAINER ID\tPOD\tNAME\tIMAGE\tSTATE\tSIZE\tINODES")
	for _, c := range r.Containers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", shortID(c.ID), orNone(c.Pod), orNone(c.Name),
			orNone(c.Image), c.State, humanBytes(c.Writable.Bytes), c.Writable.Inodes)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nLayers:")
	fmt.Fprintln(tw, "CHAIN ID\tSIZE\tINODES\tCONTAINERS\tIMAGES")
	for _, l := range r.Layers {
		ids := make([]string, len(l.Images))
		for i, id := range l.Images {
			ids[i] = shortID(id)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", shortID(l.ChainID.String()), humanBytes(l.Usage.Bytes), l.Usage.Inodes,
			l.Containers, orNone(strings.Join(ids, ",")))
	}
	tw.Flush()
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(len(id), 12)]
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func reclaimable(b, of int64) string {
	if of == 0 {
		return humanBytes(b)
	}
	return fmt.Sprintf("%s (%d%%)", humanBytes(b), int(math.Round(100*float64(b)/float64(of))))
}

// humanBytes prints b in decimal units with three significant digits
// (1.23MB); --json gives exact bytes.
func humanBytes(b int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f, i := float64(b), 0
	for f >= 999.5 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", b)
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}

// Command nriplugin is the NRI plugin the end-to-end tests run against the
// daemon. It records every event it gets, one JSON line each, and behaves
// as -mode says:
//
//	record  only record
//	adjust  also adjust each new container: one adjustment of each kind
//	fail    fail the first RunPodSandbox and the first CreateContainer
//	hang    never answer CreateContainer
//	crash   exit in the middle of CreateContainer
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// Event is one line of the events file.
type Event struct {
	Event      string    `json:"event"`
	Pod        string    `json:"pod,omitempty"`
	Container  string    `json:"container,omitempty"`
	Name       string    `json:"name,omitempty"`
	Time       time.Time `json:"time"`
	Pods       []string  `json:"pods,omitempty"`       // Synchronize
	Containers []string  `json:"containers,omitempty"` // Synchronize
}

type plugin struct {
	mode    string
	hostDir string // adjust: source of the bind mount and where the OCI hook writes

	mu      sync.Mutex
	out     *os.File
	failRun bool
	failCtr bool
}

func (p *plugin) record(e Event) {
	e.Time = time.Now()
	b, _ := json.Marshal(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.out.Write(append(b, '\n'))
}

func (p *plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	e := Event{Event: "Synchronize"}
	for _, pod := range pods {
		e.Pods = append(e.Pods, pod.GetId())
	}
	for _, c := range ctrs {
		e.Containers = append(e.Containers, c.GetId())
	}
	p.record(e)
	return nil, nil
}

func (p *plugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record(Event{Event: "RunPodSandbox", Pod: pod.GetId(), Name: pod.GetName()})
	if p.mode == "fail" && p.once(&p.failRun) {
		return errors.New("induced RunPodSandbox failure")
	}
	return nil
}

func (p *plugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record(Event{Event: "StopPodSandbox", Pod: pod.GetId(), Name: pod.GetName()})
	return nil
}

func (p *plugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record(Event{Event: "RemovePodSandbox", Pod: pod.GetId(), Name: pod.GetName()})
	return nil
}

func (p *plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record(containerEvent("CreateContainer", pod, c))
	switch p.mode {
	case "fail":
		if p.once(&p.failCtr) {
			return nil, nil, errors.New("induced CreateContainer failure")
		}
	case "hang":
		select {}
	case "crash":
		os.Exit(3)
	case "adjust":
		return p.adjustment(), nil, nil
	}
	return nil, nil, nil
}

// adjustment asks for one change of each kind the tests check.
func (p *plugin) adjustment() *api.ContainerAdjustment {
	a := &api.ContainerAdjustment{}
	a.AddEnv("NRI_ENV", "from-plugin")
	a.AddAnnotation("nri.test/annotation", "from-plugin")
	a.AddMount(&api.Mount{Destination: "/nri", Source: p.hostDir, Type: "bind", Options: []string{"rbind", "ro"}})
	a.AddDevice(&api.LinuxDevice{Path: "/dev/nri-null", Type: "c", Major: 1, Minor: 3, FileMode: api.FileMode(0o666)})
	a.SetLinuxMemoryLimit(96 << 20)
	a.SetLinuxPidLimits(321)
	a.AddHooks(&api.Hooks{CreateRuntime: []*api.Hook{{
		Path: "/bin/sh",
		Args: []string{"sh", "-c", "echo ran > " + p.hostDir + "/hook-ran"},
	}}})
	a.AddRlimit("RLIMIT_NOFILE", 4096, 4096)
	return a
}

func (p *plugin) PostCreateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record(containerEvent("PostCreateContainer", pod, c))
	return nil
}

func (p *plugin) StartContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record(containerEvent("StartContainer", pod, c))
	return nil
}

func (p *plugin) PostStartContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record(containerEvent("PostStartContainer", pod, c))
	return nil
}

func (p *plugin) UpdateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container, r *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.record(containerEvent("UpdateContainer", pod, c))
	if p.mode != "adjust" {
		return nil, nil
	}
	// Double the CPU shares the kubelet asked for.
	u := &api.ContainerUpdate{}
	u.SetContainerId(c.GetId())
	u.SetLinuxCPUShares(2 * r.GetCpu().GetShares().GetValue())
	return []*api.ContainerUpdate{u}, nil
}

func (p *plugin) PostUpdateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record(containerEvent("PostUpdateContainer", pod, c))
	return nil
}

func (p *plugin) StopContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record(containerEvent("StopContainer", pod, c))
	return nil, nil
}

func (p *plugin) RemoveContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record(containerEvent("RemoveContainer", pod, c))
	return nil
}

// once reports true the first time it is called for flag.
func (p *plugin) once(flag *bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := !*flag
	*flag = true
	return first
}

func containerEvent(name string, pod *api.PodSandbox, c *api.Container) Event {
	return Event{Event: name, Pod: pod.GetId(), Container: c.GetId(), Name: c.GetName()}
}

func main() {
	socket := flag.String("socket", api.DefaultSocketPath, "NRI socket of the runtime")
	name := flag.String("name", "e2e", "plugin name")
	idx := flag.String("idx", "50", "plugin index (invocation order)")
	events := flag.String("events", "", "file the events are appended to (default: none)")
	mode := flag.String("mode", "record", "record, adjust, fail, hang or crash")
	hostDir := flag.String("host-dir", "", "adjust: directory bound at /nri and written by the OCI hook")
	flag.Parse()

	if *events == "" {
		*events = os.DevNull
	}
	out, err := os.OpenFile(*events, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p := &plugin{mode: *mode, hostDir: *hostDir, out: out}
	s, err := stub.New(p, stub.WithSocketPath(*socket), stub.WithPluginName(*name), stub.WithPluginIdx(*idx))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "plugin stopped:", err)
		os.Exit(1)
	}
}

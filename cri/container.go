package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/atomicfile"
	"github.com/criserver/criserver/oci"
)

// containerImage is the image a container was created from, as resolved
// at creation: status answers from it even after the image is removed.
type containerImage struct {
	// Ref is what the CRI config named (a tag, digest or ID).
	Ref         string   `json:"ref"`
	ID          string   `json:"id"`
	RepoTags    []string `json:"repoTags,omitempty"`
	RepoDigests []string `json:"repoDigests,omitempty"`
}

// containerRecord is one container: what was asked (immutable after
// creation) and what happened to it (guarded by mu). It is kept in memory
// for List/Status and on disk under <root>/containers/<id>/container.json.
type containerRecord struct {
	ID        string
	PodID     string
	Handler   string
	Config    *runtime.ContainerConfig
	CreatedAt time.Time
	Image     containerImage
	// LogPath is the absolute CRI log file ("" when the pod has no log directory).
	LogPath     string
	CgroupsPath string
	User        oci.ResolvedUser
	StopSignal  syscall.Signal
	// nameKey reserves the metadata name within the pod.
	nameKey string

	// op serialises Start/Stop/Remove/Update of this container.
	op sync.Mutex
	// saveMu orders record writes with the record's removal: a late write
	// (the exit watcher) must not bring back a removed record.
	saveMu  sync.Mutex
	removed bool

	mu         sync.Mutex
	state      runtime.ContainerState
	pid        int
	startedAt  time.Time
	finishedAt time.Time
	exitCode   int32
	reason     string
	message    string
	resources  *runtime.LinuxContainerResources
	// wire is the ListContainers encoding of the container in wireState
	// (wire.go); nil until first listed.
	wire      []byte
	wireState runtime.ContainerState
}

// State returns the container's current state.
func (c *containerRecord) State() runtime.ContainerState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Pid is the container's init pid while it runs (0 otherwise).
func (c *containerRecord) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == runtime.ContainerState_CONTAINER_EXITED {
		return 0
	}
	return c.pid
}

// StartedAt is when the container started (zero before).
func (c *containerRecord) StartedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startedAt
}

// recordFile is the on-disk form of a containerRecord.
type recordFile struct {
	ID          string           `json:"id"`
	PodID       string           `json:"podID"`
	Handler     string           `json:"handler"`
	Config      []byte           `json:"config"` // protobuf ContainerConfig
	CreatedAt   time.Time        `json:"createdAt"`
	Image       containerImage   `json:"image"`
	LogPath     string           `json:"logPath,omitempty"`
	CgroupsPath string           `json:"cgroupsPath"`
	User        oci.ResolvedUser `json:"user"`
	StopSignal  int              `json:"stopSignal"`
	State       int32            `json:"state"`
	Pid         int              `json:"pid,omitempty"`
	StartedAt   time.Time        `json:"startedAt,omitempty"`
	FinishedAt  time.Time        `json:"finishedAt,omitempty"`
	ExitCode    int32            `json:"exitCode,omitempty"`
	Reason      string           `json:"reason,omitempty"`
	Message     string           `json:"message,omitempty"`
	Resources   []byte           `json:"resources,omitempty"` // protobuf LinuxContainerResources
}

func (c *containerRecord) toFile() (*recordFile, error) {
	cfg, err := proto.Marshal(c.Config)
	if err != nil {
		return nil, fmt.Errorf("marshal config of %s: %w", c.ID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f := &recordFile{
		ID: c.ID, PodID: c.PodID, Handler: c.Handler, Config: cfg, CreatedAt: c.CreatedAt, Image: c.Image,
		LogPath: c.LogPath, CgroupsPath: c.CgroupsPath, User: c.User, StopSignal: int(c.StopSignal),
		State: int32(c.state), Pid: c.pid, StartedAt: c.startedAt, FinishedAt: c.finishedAt,
		ExitCode: c.exitCode, Reason: c.reason, Message: c.message,
	}
	if c.resources != nil {
		if f.Resources, err = proto.Marshal(c.resources); err != nil {
			return nil, fmt.Errorf("marshal resources of %s: %w", c.ID, err)
		}
	}
	return f, nil
}

func recordFromFile(f *recordFile) (*containerRecord, error) {
	cfg := &runtime.ContainerConfig{}
	if err := proto.Unmarshal(f.Config, cfg); err != nil {
		return nil, fmt.Errorf("decode config of %s: %w", f.ID, err)
	}
	if f.Handler == "" {
		// Written before records named the resolved handler, when "" was runc.
		f.Handler = oci.HandlerRunc
	}
	c := &containerRecord{
		ID: f.ID, PodID: f.PodID, Handler: f.Handler, Config: cfg, CreatedAt: f.CreatedAt, Image: f.Image,
		LogPath: f.LogPath, CgroupsPath: f.CgroupsPath, User: f.User, StopSignal: syscall.Signal(f.StopSignal),
		nameKey: nameKey(f.PodID, cfg.GetMetadata()),
		state:   runtime.ContainerState(f.State), pid: f.Pid, startedAt: f.StartedAt, finishedAt: f.FinishedAt,
		exitCode: f.ExitCode, reason: f.Reason, message: f.Message,
	}
	if len(f.Resources) > 0 {
		c.resources = &runtime.LinuxContainerResources{}
		if err := proto.Unmarshal(f.Resources, c.resources); err != nil {
			return nil, fmt.Errorf("decode resources of %s: %w", f.ID, err)
		}
	}
	return c, nil
}

// nameKey identifies a container name within its pod.
func nameKey(podID string, md *runtime.ContainerMetadata) string {
	return fmt.Sprintf("%s/%s/%d", podID, md.GetName(), md.GetAttempt())
}

// nameReservation holds a name while its container is made, so that a
// retried CreateContainer waits for the first call and gets its result.
type nameReservation struct {
	done chan struct{}
	id   string
	err  error
}

// containerStore is the in-memory index of containers.
type containerStore struct {
	mu     sync.RWMutex
	byID   map[string]*containerRecord
	byName map[string]*nameReservation
}

func newContainerStore() *containerStore {
	return &containerStore{byID: map[string]*containerRecord{}, byName: map[string]*nameReservation{}}
}

// get finds a container by full ID or unique ID prefix.
func (st *containerStore) get(id string) (*containerRecord, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: container ID is empty", errInvalidArgument)
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	if c, ok := st.byID[id]; ok {
		return c, nil
	}
	var found *containerRecord
	for cid, c := range st.byID {
		if strings.HasPrefix(cid, id) {
			if found != nil {
				return nil, fmt.Errorf("%w: container ID prefix %q is ambiguous", errInvalidArgument, id)
			}
			found = c
		}
	}
	if found == nil {
		return nil, fmt.Errorf("container %q: %w", id, errNotFound)
	}
	return found, nil
}

func (st *containerStore) add(c *containerRecord) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.byID[c.ID] = c
}

func (st *containerStore) delete(c *containerRecord) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.byID, c.ID)
	if r, ok := st.byName[c.nameKey]; ok && r.id == c.ID {
		delete(st.byName, c.nameKey)
	}
}

// list returns the containers sorted by creation time.
func (st *containerStore) list() []*containerRecord {
	st.mu.RLock()
	out := make([]*containerRecord, 0, len(st.byID))
	for _, c := range st.byID {
		out = append(out, c)
	}
	st.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// byPod returns the containers of one pod.
func (st *containerStore) byPod(podID string) []*containerRecord {
	var out []*containerRecord
	for _, c := range st.list() {
		if c.PodID == podID {
			out = append(out, c)
		}
	}
	return out
}

// getContainer finds a container by ID or unique ID prefix; a gRPC
// NotFound/InvalidArgument error otherwise. Streaming (exec, attach) uses
// it for the handler, state and stdio flags.
func (s *Service) getContainer(id string) (*containerRecord, error) {
	return s.containers.get(id)
}

// removeContainerRecord deletes the record for good.
func (s *Service) removeContainerRecord(c *containerRecord) error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.removed = true
	if err := os.RemoveAll(s.containerDir(c.ID)); err != nil {
		return fmt.Errorf("remove record of container %s: %w", c.ID, err)
	}
	return nil
}

// containersDir holds the container records.
func (s *Service) containersDir() string { return filepath.Join(s.opts.Root, "containers") }

func (s *Service) containerDir(id string) string { return filepath.Join(s.containersDir(), id) }

// saveContainer writes the record atomically.
func (s *Service) saveContainer(c *containerRecord) error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	if c.removed {
		return nil
	}
	f, err := c.toFile()
	if err != nil {
		return err
	}
	dir := s.containerDir(c.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create record dir of %s: %w", c.ID, err)
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "container.json"), f); err != nil {
		return fmt.Errorf("save container %s: %w", c.ID, err)
	}
	return nil
}

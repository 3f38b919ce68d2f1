package cri

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

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

// containerStatus is what changes over a container's life. It is a value:
// containerStore.update works on a copy and swaps it in whole, so readers
// take it without a lock and never see half a change. Resources is never
// changed in place, only replaced.
type containerStatus struct {
	State      runtime.ContainerState
	Pid        int
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int32
	Reason     string
	Message    string
	Resources  *runtime.LinuxContainerResources
}

// containerRecord is one container: what was asked (set at creation,
// before the container is indexed, and not changed after) and its status.
// It is kept in memory for List/Status and on disk under
// <root>/containers/<id>.json.
//
// Locks, in the order they are taken: op, then mu, then the store's index
// lock, then the event bus's.
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

	// op serialises Start/Stop/Remove/Update of this container; it is held
	// across runtime calls.
	op sync.Mutex
	// mu orders status changes, their record writes and events with each
	// other and with the record's removal (containerStore.update, delete):
	// a late change (the exit watcher) must not bring back a removed record.
	mu      sync.Mutex
	removed bool // guarded by mu
	status  atomic.Pointer[containerStatus]
	// released is set once the OCI runtime has deleted the exited
	// container (deleteFromRuntime); a stop records the exit both from
	// its own call and through the exit watcher, and only the first
	// release has work to do.
	released atomic.Bool
	// wire is the ListContainers encoding of the container in one state
	// (wire.go); nil until first listed.
	wire atomic.Pointer[wireEntry]
}

// Status returns the container's current status.
func (c *containerRecord) Status() containerStatus {
	if st := c.status.Load(); st != nil {
		return *st
	}
	return containerStatus{}
}

// isRemoved tells whether the container's record was deleted.
func (c *containerRecord) isRemoved() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removed
}

// setStatus sets the status of a record not yet shared (creation, load).
func (c *containerRecord) setStatus(st containerStatus) { c.status.Store(&st) }

// State returns the container's current state.
func (c *containerRecord) State() runtime.ContainerState { return c.Status().State }

// Pid is the container's init pid while it runs (0 otherwise).
func (c *containerRecord) Pid() int {
	st := c.Status()
	if st.State == runtime.ContainerState_CONTAINER_EXITED {
		return 0
	}
	return st.Pid
}

// StartedAt is when the container started (zero before).
func (c *containerRecord) StartedAt() time.Time { return c.Status().StartedAt }

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
	// Incomplete marked a container being made in records written before
	// CreateContainer wrote its record once, at the end; start-up rolls
	// back such a record.
	Incomplete bool `json:"incomplete,omitempty"`
}

// toFile is the record of c with status st.
func (c *containerRecord) toFile(st containerStatus) (*recordFile, error) {
	cfg, err := proto.Marshal(c.Config)
	if err != nil {
		return nil, fmt.Errorf("marshal config of %s: %w", c.ID, err)
	}
	f := &recordFile{
		ID: c.ID, PodID: c.PodID, Handler: c.Handler, Config: cfg, CreatedAt: c.CreatedAt, Image: c.Image,
		LogPath: c.LogPath, CgroupsPath: c.CgroupsPath, User: c.User, StopSignal: int(c.StopSignal),
		State: int32(st.State), Pid: st.Pid, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
		ExitCode: st.ExitCode, Reason: st.Reason, Message: st.Message,
	}
	if st.Resources != nil {
		if f.Resources, err = proto.Marshal(st.Resources); err != nil {
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
	}
	st := containerStatus{
		State: runtime.ContainerState(f.State), Pid: f.Pid, StartedAt: f.StartedAt, FinishedAt: f.FinishedAt,
		ExitCode: f.ExitCode, Reason: f.Reason, Message: f.Message,
	}
	if len(f.Resources) > 0 {
		st.Resources = &runtime.LinuxContainerResources{}
		if err := proto.Unmarshal(f.Resources, st.Resources); err != nil {
			return nil, fmt.Errorf("decode resources of %s: %w", f.ID, err)
		}
	}
	c.setStatus(st)
	return c, nil
}

// nameKey identifies a container name within its pod.
func nameKey(podID string, md *runtime.ContainerMetadata) string {
	return fmt.Sprintf("%s/%s/%d", podID, md.GetName(), md.GetAttempt())
}

package cri

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/atomicfile"
	"github.com/criserver/criserver/reservation"
	"github.com/criserver/criserver/sandbox"
)

// errUnchanged, returned by an update function, leaves the container as it
// was: nothing is written and no event goes out.
var errUnchanged = errors.New("container status unchanged")

// podIndex finds pods for the pod part of container events.
type podIndex interface {
	Get(id string) (*sandbox.Sandbox, error)
}

// containerStore owns the containers' bookkeeping: the index by ID and by
// name, the records on disk under dir, and the events of their changes.
// Every change of a container's status goes through update.
type containerStore struct {
	dir    string
	events *eventBus
	pods   podIndex // nil: events carry no pod status

	// names reserves each container's name (nameKey) within its pod.
	names *reservation.Names

	mu   sync.RWMutex
	byID map[string]*containerRecord
}

func newContainerStore(dir string, events *eventBus, pods podIndex) *containerStore {
	return &containerStore{
		dir: dir, events: events, pods: pods,
		names: reservation.New(), byID: map[string]*containerRecord{},
	}
}

// recordPath is the record of container id: one file, with no directory
// of its own (atomicfile.RecordExt).
func (st *containerStore) recordPath(id string) string { return atomicfile.RecordPath(st.dir, id) }

// filesDir holds what container id has beside its record: its image
// volumes with image_volumes = "bind". It exists only when something goes
// in it.
func (st *containerStore) filesDir(id string) string { return filepath.Join(st.dir, id) }

// legacyRecordName is the record's name in the files directory, where
// records were before they were flat; start-up moves them.
const legacyRecordName = "container.json"

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

// lookup finds a container by its full ID only.
func (st *containerStore) lookup(id string) (*containerRecord, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	c, ok := st.byID[id]
	return c, ok
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

// add indexes a container just made, under the name its create reserved.
func (st *containerStore) add(c *containerRecord) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.byID[c.ID] = c
}

// index adds a container loaded from its record, its name taken.
func (st *containerStore) index(c *containerRecord) {
	st.add(c)
	st.names.Set(c.nameKey, c.ID)
}

// update changes c's status with fn, writes the record and publishes the
// event of the change, all under c.mu, so that records and events follow
// the order of the changes. fn works on a copy; errUnchanged (or any
// error) from it leaves the container as it was. The change stays in
// memory even when the record cannot be written, since it happened; the
// write error is returned, and the next write carries the change. A
// removed container is not changed.
func (st *containerStore) update(c *containerRecord, fn func(*containerStatus) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return nil
	}
	old := c.Status()
	next := old
	if err := fn(&next); err != nil {
		if errors.Is(err, errUnchanged) {
			return nil
		}
		return err
	}
	c.status.Store(&next)
	err := st.write(c, next)
	if typ, ok := stateEvent(old.State, next.State); ok {
		st.publish(c, typ)
	}
	return err
}

// stateEvent is the event of a state change, if it is one.
func stateEvent(from, to runtime.ContainerState) (runtime.ContainerEventType, bool) {
	switch {
	case from == to:
		return 0, false
	case to == runtime.ContainerState_CONTAINER_RUNNING:
		return runtime.ContainerEventType_CONTAINER_STARTED_EVENT, true
	case to == runtime.ContainerState_CONTAINER_EXITED:
		return runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, true
	}
	return 0, false
}

// save writes c's record as it stands: the first record of a container
// being made.
func (st *containerStore) save(c *containerRecord) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return nil
	}
	return st.write(c, c.Status())
}

// write writes the record atomically; the caller holds c.mu.
func (st *containerStore) write(c *containerRecord, s containerStatus) error {
	f, err := c.toFile(s)
	if err != nil {
		return err
	}
	// A stat when the directory is there (LoadContainers made it).
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return fmt.Errorf("create record dir: %w", err)
	}
	if err := atomicfile.WriteJSON(st.recordPath(c.ID), f); err != nil {
		return fmt.Errorf("save container %s: %w", c.ID, err)
	}
	return nil
}

// delete removes c's record for good, then drops c from the index (its
// name with it) and publishes its deletion. Later updates of c change
// nothing. A container never indexed (a failed create) just loses its
// record.
func (st *containerStore) delete(c *containerRecord) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removed = true
	// The record goes last: a crash before leaves the container listed,
	// and start-up removes a files directory that no record names.
	if err := os.RemoveAll(st.filesDir(c.ID)); err != nil {
		return fmt.Errorf("remove files of container %s: %w", c.ID, err)
	}
	if err := os.Remove(st.recordPath(c.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove record of container %s: %w", c.ID, err)
	}
	st.mu.Lock()
	indexed := st.byID[c.ID] == c
	delete(st.byID, c.ID)
	st.mu.Unlock()
	st.names.Release(c.nameKey, c.ID)
	if indexed {
		st.publish(c, runtime.ContainerEventType_CONTAINER_DELETED_EVENT)
	}
	return nil
}

// publish sends the event of c to the subscribers, with the pod and the
// statuses of its containers as they are now; it costs nothing without
// subscribers.
func (st *containerStore) publish(c *containerRecord, typ runtime.ContainerEventType) {
	if !st.events.hasSubscribers() {
		return
	}
	st.events.publish(&runtime.ContainerEventResponse{
		ContainerId:        c.ID,
		ContainerEventType: typ,
		CreatedAt:          time.Now().UnixNano(),
		PodSandboxStatus:   podEventStatus(st.pods, c.PodID),
		// The kubelet's evented PLEG takes the pod's container statuses
		// from the event; a deleted container is no longer among them.
		ContainersStatuses: st.podStatuses(c.PodID),
	})
}

// podStatuses is the status of every container of a pod, for events and
// PodSandboxStatus' containers_statuses.
func (st *containerStore) podStatuses(podID string) []*runtime.ContainerStatus {
	var out []*runtime.ContainerStatus
	for _, c := range st.byPod(podID) {
		out = append(out, c.toStatus())
	}
	return out
}

// recordIDs readies the record directory for loading and returns the IDs
// that have a record (atomicfile.PrepareRecords). It deletes the files
// directories no record names: CreateContainer writes the record last, so
// a crash can leave image volume directories of a container that never
// came to be.
func (st *containerStore) recordIDs() ([]string, error) {
	ids, orphans, err := atomicfile.PrepareRecords(st.dir, legacyRecordName)
	if err != nil {
		return nil, fmt.Errorf("container records: %w", err)
	}
	for _, id := range orphans {
		klog.InfoS("Removing the files of a container without a record", "containerID", id)
		if err := os.RemoveAll(st.filesDir(id)); err != nil {
			klog.ErrorS(err, "Remove the files of a container without a record", "containerID", id)
		}
	}
	return ids, nil
}

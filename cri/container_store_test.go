package cri

import (
	"context"
	"errors"
	"os"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/atomicfile"
)

// readState is the state the record of c on disk holds.
func readState(t *testing.T, st *containerStore, id string) runtime.ContainerState {
	t.Helper()
	var f recordFile
	if err := atomicfile.ReadJSON(st.recordPath(id), &f); err != nil {
		t.Fatal(err)
	}
	return runtime.ContainerState(f.State)
}

// drain returns the events waiting on ch.
func drain(ch chan *runtime.ContainerEventResponse) []*runtime.ContainerEventResponse {
	var out []*runtime.ContainerEventResponse
	for {
		select {
		case ev := <-ch:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func TestStoreUpdate(t *testing.T) {
	const (
		created = runtime.ContainerState_CONTAINER_CREATED
		running = runtime.ContainerState_CONTAINER_RUNNING
		exited  = runtime.ContainerState_CONTAINER_EXITED
	)
	boom := errors.New("boom")
	tests := []struct {
		name      string
		from      runtime.ContainerState
		fn        func(*containerStatus) error
		wantState runtime.ContainerState
		wantErr   error
		// wantEvent is the event published (-1: none); written tells
		// whether the record was written.
		wantEvent runtime.ContainerEventType
		written   bool
	}{
		{"start", created, setState(running), running, nil, runtime.ContainerEventType_CONTAINER_STARTED_EVENT, true},
		{"exit", running, setState(exited), exited, nil, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, true},
		{"created exits", created, setState(exited), exited, nil, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, true},
		{"same state", running, func(st *containerStatus) error { st.Pid = 7; return nil }, running, nil, -1, true},
		{"unchanged", running, func(*containerStatus) error { return errUnchanged }, running, nil, -1, false},
		{"failed", running, func(st *containerStatus) error { st.State = exited; return boom }, running, boom, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := newEventBus()
			ch := events.subscribe()
			st := newContainerStore(t.TempDir(), events, nil)
			c := testRecord("abc", "pod", tt.from, nil)
			st.index(c)
			err := st.update(c, tt.fn)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("update: %v, want %v", err, tt.wantErr)
			}
			if got := c.State(); got != tt.wantState {
				t.Errorf("state %v, want %v", got, tt.wantState)
			}
			_, statErr := os.Stat(st.recordPath(c.ID))
			if written := statErr == nil; written != tt.written {
				t.Fatalf("record written: %v, want %v", written, tt.written)
			}
			if tt.written {
				if got := readState(t, st, c.ID); got != tt.wantState {
					t.Errorf("record holds %v, want %v", got, tt.wantState)
				}
			}
			evs := drain(ch)
			switch {
			case tt.wantEvent < 0 && len(evs) != 0:
				t.Errorf("events %v, want none", evs)
			case tt.wantEvent >= 0 && (len(evs) != 1 || evs[0].ContainerEventType != tt.wantEvent):
				t.Errorf("events %v, want one %v", evs, tt.wantEvent)
			case tt.wantEvent >= 0:
				sts := evs[0].ContainersStatuses
				if len(sts) != 1 || sts[0].Id != c.ID || sts[0].State != tt.wantState {
					t.Errorf("event statuses %v, want %s in %v", sts, c.ID, tt.wantState)
				}
			}
		})
	}
}

func setState(s runtime.ContainerState) func(*containerStatus) error {
	return func(st *containerStatus) error {
		st.State = s
		return nil
	}
}

// A change after the removal (the exit watcher, late) must not bring the
// record back, and publishes nothing.
func TestStoreUpdateAfterDelete(t *testing.T) {
	events := newEventBus()
	ch := events.subscribe()
	st := newContainerStore(t.TempDir(), events, nil)
	c := testRecord("abc", "pod", runtime.ContainerState_CONTAINER_RUNNING, nil)
	st.index(c)
	if err := st.save(c); err != nil {
		t.Fatal(err)
	}
	if err := st.delete(c); err != nil {
		t.Fatal(err)
	}
	if evs := drain(ch); len(evs) != 1 || evs[0].ContainerEventType != runtime.ContainerEventType_CONTAINER_DELETED_EVENT || len(evs[0].ContainersStatuses) != 0 {
		t.Errorf("events of the delete: %v, want one DELETED without the container's status", evs)
	}
	if _, err := st.get(c.ID); !errors.Is(err, errNotFound) {
		t.Errorf("get after delete: %v, want not found", err)
	}
	if err := st.update(c, setState(runtime.ContainerState_CONTAINER_EXITED)); err != nil {
		t.Fatal(err)
	}
	if err := st.save(c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.recordPath(c.ID)); !os.IsNotExist(err) {
		t.Errorf("a change after removal brought the record back: %v", err)
	}
	if evs := drain(ch); len(evs) != 0 {
		t.Errorf("a change after removal published %v", evs)
	}
	// The name is free again.
	if r, err := st.names.Reserve(context.Background(), c.nameKey); err != nil || !r.Held {
		t.Errorf("the name of a deleted container is still taken: %+v, %v", r, err)
	}
}

// Deleting a container that was never indexed (a failed create) removes
// its record and publishes nothing.
func TestStoreDeleteUnindexed(t *testing.T) {
	events := newEventBus()
	ch := events.subscribe()
	st := newContainerStore(t.TempDir(), events, nil)
	c := testRecord("abc", "pod", runtime.ContainerState_CONTAINER_CREATED, nil)
	if err := st.save(c); err != nil {
		t.Fatal(err)
	}
	if err := st.delete(c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.recordPath(c.ID)); !os.IsNotExist(err) {
		t.Errorf("record left: %v", err)
	}
	if evs := drain(ch); len(evs) != 0 {
		t.Errorf("deleting an unlisted container published %v", evs)
	}
}

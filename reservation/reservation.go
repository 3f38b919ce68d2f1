// Package reservation hands a name (the metadata key of a kubelet request)
// to the one call that makes its object, and the object's new ID with it.
// Pods (sandbox) and containers (cri) reserve their names here, so a
// retried request behaves the same for both.
//
// The kubelet retries RunPodSandbox and CreateContainer with the same
// metadata after its deadline expires, while the first call may still be
// working. A second call for a name held by a call in flight waits for it.
// If that call succeeded, the waiter gets its object's ID: the kubelet goes
// on with the object it asked for, instead of failing with "name is
// reserved" until it tries a new attempt and leaves the first object
// behind. If it failed, the name is free again and the waiter makes the
// object itself.
package reservation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
)

// NewID returns a random 64-hex-digit ID, the form of pod and container IDs.
func NewID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// Names holds the reserved names of one kind of object. The zero value is
// not usable; use New.
type Names struct {
	mu     sync.Mutex
	byName map[string]*entry
}

// entry is one reserved name: done is closed once its object is made (or
// was loaded), or its call failed and the entry left the map.
type entry struct {
	done chan struct{}
	id   string
	ok   bool // set before done is closed: the object was made
}

// New returns an empty set of names.
func New() *Names {
	return &Names{byName: map[string]*entry{}}
}

// Reservation is the outcome of Reserve.
type Reservation struct {
	// ID is the object's ID: a new one when Held, else the ID of the object
	// another call made under the name.
	ID string
	// Held tells that this call holds the name: it makes the object and
	// then calls Done.
	Held bool

	names *Names
	name  string
	e     *entry
}

// Reserve claims name for a new object, or, when another call holds it,
// waits for that call: its object's ID if it succeeded, else the name is
// claimed afresh. Only ctx ending while waiting fails it.
func (n *Names) Reserve(ctx context.Context, name string) (*Reservation, error) {
	for {
		n.mu.Lock()
		e, taken := n.byName[name]
		if !taken {
			e = &entry{done: make(chan struct{}), id: NewID()}
			n.byName[name] = e
			n.mu.Unlock()
			return &Reservation{ID: e.id, Held: true, names: n, name: name, e: e}, nil
		}
		n.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the call making %s: %w", name, ctx.Err())
		}
		if e.ok {
			return &Reservation{ID: e.id}, nil
		}
	}
}

// Done ends the making of the object: with a nil err the name stays the
// object's until Release, else it is free again. Waiters wake either way,
// so the caller puts a made object where they will look for it first.
func (r *Reservation) Done(err error) {
	if !r.Held {
		return
	}
	n := r.names
	n.mu.Lock()
	if err == nil {
		r.e.ok = true
	} else if n.byName[r.name] == r.e {
		delete(n.byName, r.name)
	}
	n.mu.Unlock()
	close(r.e.done)
}

// Set reserves name for an object that already exists (loaded from its
// record at start-up).
func (n *Names) Set(name, id string) {
	e := &entry{done: make(chan struct{}), id: id, ok: true}
	close(e.done)
	n.mu.Lock()
	n.byName[name] = e
	n.mu.Unlock()
}

// Release frees name if the object id holds it: the object is removed.
func (n *Names) Release(name, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	// An object still being made is not released: its Done frees the
	// name if it fails.
	if e, ok := n.byName[name]; ok && e.id == id && e.ok {
		delete(n.byName, name)
	}
}

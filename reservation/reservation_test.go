package reservation

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"
)

var idPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestReserve runs a second call for a name against what the first did
// with it.
func TestReserve(t *testing.T) {
	failed := errors.New("create failed")
	tests := []struct {
		name string
		// before prepares the name; it returns the reservation of a call
		// still in flight, or nil.
		before func(n *Names) *Reservation
		// finish, when set, is how the call in flight ends while the
		// second call waits.
		finish func(r *Reservation)
		// cancel ends the second call's context while it waits.
		cancel bool
		// wantID is the ID the second call must get ("" for a new one);
		// wantHeld whether it holds the name.
		wantID   string
		wantHeld bool
		wantErr  error
	}{
		{name: "free", before: func(*Names) *Reservation { return nil }, wantHeld: true},
		{
			name:   "in flight, then made",
			before: func(n *Names) *Reservation { return mustReserve(t, n) },
			finish: func(r *Reservation) { r.Done(nil) },
			wantID: "first",
		},
		{
			name:     "in flight, then failed",
			before:   func(n *Names) *Reservation { return mustReserve(t, n) },
			finish:   func(r *Reservation) { r.Done(failed) },
			wantHeld: true,
		},
		{
			name:    "in flight, caller gives up",
			before:  func(n *Names) *Reservation { return mustReserve(t, n) },
			cancel:  true,
			wantErr: context.Canceled,
		},
		{
			name: "made earlier",
			before: func(n *Names) *Reservation {
				mustReserve(t, n).Done(nil)
				return nil
			},
			wantID: "first",
		},
		{
			name:   "loaded",
			before: func(n *Names) *Reservation { n.Set("pod_ns_uid_0", "loaded-id"); return nil },
			wantID: "loaded-id",
		},
		{
			name: "released",
			before: func(n *Names) *Reservation {
				n.Set("pod_ns_uid_0", "loaded-id")
				n.Release("pod_ns_uid_0", "loaded-id")
				return nil
			},
			wantHeld: true,
		},
		{
			name: "released by another object",
			before: func(n *Names) *Reservation {
				n.Set("pod_ns_uid_0", "loaded-id")
				n.Release("pod_ns_uid_0", "other-id")
				return nil
			},
			wantID: "loaded-id",
		},
		{
			name: "released while in flight, then failed",
			before: func(n *Names) *Reservation {
				r := mustReserve(t, n)
				n.Release("pod_ns_uid_0", r.ID) // a rollback: the failing call still holds it
				return r
			},
			finish:   func(r *Reservation) { r.Done(failed) },
			wantHeld: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := New()
			first := tt.before(n)
			firstID := ""
			if first != nil {
				firstID = first.ID
			} else if r, ok := n.byName["pod_ns_uid_0"]; ok {
				firstID = r.id
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				r   *Reservation
				err error
			}
			got := make(chan result, 1)
			go func() {
				r, err := n.Reserve(ctx, "pod_ns_uid_0")
				got <- result{r, err}
			}()
			if first != nil {
				select {
				case res := <-got:
					t.Fatalf("second call returned %+v, %v while the first was in flight", res.r, res.err)
				case <-time.After(50 * time.Millisecond):
				}
			}
			if tt.finish != nil {
				tt.finish(first)
			}
			if tt.cancel {
				cancel()
			}
			res := <-got
			if !errors.Is(res.err, tt.wantErr) {
				t.Fatalf("Reserve: %v, want %v", res.err, tt.wantErr)
			}
			if res.err != nil {
				return
			}
			if res.r.Held != tt.wantHeld {
				t.Errorf("held = %v, want %v", res.r.Held, tt.wantHeld)
			}
			switch tt.wantID {
			case "":
				if !idPattern.MatchString(res.r.ID) || res.r.ID == firstID {
					t.Errorf("ID %q, want a new one (first %q)", res.r.ID, firstID)
				}
			case "first":
				if res.r.ID != firstID {
					t.Errorf("ID %q, want the first call's %q", res.r.ID, firstID)
				}
			default:
				if res.r.ID != tt.wantID {
					t.Errorf("ID %q, want %q", res.r.ID, tt.wantID)
				}
			}
		})
	}
}

func mustReserve(t *testing.T, n *Names) *Reservation {
	t.Helper()
	r, err := n.Reserve(context.Background(), "pod_ns_uid_0")
	if err != nil || !r.Held {
		t.Fatalf("first Reserve = %+v, %v", r, err)
	}
	return r
}

// Many calls racing for one name: exactly one makes the object, and every
// other gets its ID.
func TestReserveConcurrent(t *testing.T) {
	n := New()
	const callers = 20
	type result struct {
		id   string
		held bool
	}
	results := make(chan result, callers)
	for range callers {
		go func() {
			r, err := n.Reserve(context.Background(), "ctr")
			if err != nil {
				t.Error(err)
				results <- result{}
				return
			}
			if r.Held {
				time.Sleep(10 * time.Millisecond) // making it
				r.Done(nil)
			}
			results <- result{r.ID, r.Held}
		}()
	}
	held, ids := 0, map[string]bool{}
	for range callers {
		res := <-results
		ids[res.id] = true
		if res.held {
			held++
		}
	}
	if held != 1 || len(ids) != 1 {
		t.Errorf("%d calls held the name and %d IDs came out, want 1 and 1", held, len(ids))
	}
}

func TestNewID(t *testing.T) {
	a, b := NewID(), NewID()
	if !idPattern.MatchString(a) || a == b {
		t.Errorf("NewID gave %q and %q", a, b)
	}
}

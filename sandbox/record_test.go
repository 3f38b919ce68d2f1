package sandbox

import (
	"context"
	"path/filepath"
	"testing"
)

// A daemon that died while making a pod leaves an incomplete record; the
// next start removes everything the record names.
func TestLoadCleansInterruptedRun(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	opts := Options{Root: filepath.Join(root, "r"), State: filepath.Join(root, "s"), Network: &fakeNetwork{}}
	m, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := m.Run(context.Background(), podConfig("crash"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.writeRecord(sb, true); err != nil {
		t.Fatal(err)
	}
	nw := &fakeNetwork{}
	opts.Network = nw
	m2, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.List()) != 0 {
		t.Errorf("interrupted pod is listed after restart")
	}
	if len(nw.dels) != 1 {
		t.Errorf("CNI DEL ran %d times for the interrupted pod", len(nw.dels))
	}
	assertGone(t, m2, sb)
}

// After a reboot the pins are gone: the pod is NOTREADY, and Remove still
// releases its network.
func TestLoadMarksLostPodsNotReady(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	opts := Options{Root: filepath.Join(root, "r"), State: filepath.Join(root, "s"), Network: &fakeNetwork{}}
	m, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := m.Run(context.Background(), podConfig("reboot"), "")
	if err != nil {
		t.Fatal(err)
	}
	stopInfra(sb.InfraPID, sb.ID)
	unmountShm(sb.ShmPath)
	for _, p := range []string{sb.NetNSPath, sb.IPCNSPath, sb.UTSNSPath} {
		unpinNamespace(p)
	}
	nw := &fakeNetwork{}
	opts.Network = nw
	m2, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m2.Get(sb.ID)
	if err != nil || got.State != StateNotReady {
		t.Fatalf("pod after reboot = %+v, %v; want NOTREADY", got, err)
	}
	if err := m2.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	if len(nw.dels) != 1 {
		t.Errorf("CNI DEL ran %d times on remove", len(nw.dels))
	}
	assertGone(t, m2, sb)
}

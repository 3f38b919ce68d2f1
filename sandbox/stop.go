package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/klog/v2"

	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/fault"
)

// Stop ends the pod's infra process, detaches it from the network and
// unmounts its shm; the pod becomes NOTREADY. Its containers must already
// be stopped. Stop of an unknown or stopped pod succeeds.
func (m *Manager) Stop(ctx context.Context, id string) error {
	l := m.podLock(id)
	l.Lock()
	defer l.Unlock()
	sb, err := m.Get(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	before := *sb
	err = m.stop(ctx, sb)
	if err == nil {
		sb.State = StateNotReady
	}
	if sb.State == before.State && sb.networkDetached == before.networkDetached {
		return err
	}
	if werr := m.writeRecord(sb, false); werr != nil {
		return errors.Join(err, werr)
	}
	m.update(sb)
	return err
}

// stop undoes what a stopped pod no longer needs. Every step is safe to
// repeat, so a Stop that failed midway can be retried; a failed step does
// not keep the others from running.
func (m *Manager) stop(ctx context.Context, sb *Sandbox) error {
	var errs []error
	if err := stopInfra(sb.InfraPID, sb.ID); err != nil {
		errs = append(errs, err)
	}
	if !sb.HostNetwork && !sb.networkDetached && m.opts.Network != nil {
		t := time.Now()
		if err := m.detach(ctx, sb); err != nil {
			errs = append(errs, err)
		} else {
			sb.networkDetached = true
			klog.V(4).InfoS("Pod sandbox step done", "pod", sb.ID, "step", "network teardown", "took", time.Since(t))
			fault.Crash("sandbox.stop.after-cni")
		}
	}
	if err := unmountShm(sb.ShmPath); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("stop pod %s: %w", sb.ID, errors.Join(errs...))
	}
	return nil
}

func (m *Manager) detach(ctx context.Context, sb *Sandbox) error {
	pod, err := m.cniPod(sb)
	if err != nil {
		return err
	}
	return m.opts.Network.Detach(ctx, pod)
}

// Remove stops the pod if needed and removes its namespaces, files, cgroup
// and record. Its containers must already be removed. Remove of an unknown
// pod succeeds.
func (m *Manager) Remove(ctx context.Context, id string) error {
	l := m.podLock(id)
	l.Lock()
	defer l.Unlock()
	sb, err := m.Get(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err := m.teardown(ctx, sb, false); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.pods, id)
	delete(m.podLocks, id)
	m.mu.Unlock()
	m.names.Release(metadataKey(sb.Metadata()), id)
	klog.InfoS("Pod sandbox removed", "pod", id)
	return nil
}

// teardown removes everything of the pod, in the reverse order of create.
// It continues past failures so as to leak as little as it can, and
// reports them all. On failure the record stays for a retry unless force
// is set (a pod whose creation failed is never retried).
func (m *Manager) teardown(ctx context.Context, sb *Sandbox, force bool) error {
	var errs []error
	if err := m.stop(ctx, sb); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []string{sb.NetNSPath, sb.IPCNSPath, sb.UTSNSPath, sb.UserNSPath} {
		if err := unpinNamespace(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(m.stateDir(sb.ID)); err != nil {
		errs = append(errs, fmt.Errorf("remove pod state dir: %w", err))
	}
	if sb.CgroupCreated {
		if err := cgroups.Delete(cgroups.RelPath(sb.CgroupParent)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 && !force {
		// Keep the record: it is what a retried Remove works from.
		return fmt.Errorf("remove pod %s: %w", sb.ID, errors.Join(errs...))
	}
	fault.Crash("sandbox.remove.before-record")
	if err := os.Remove(m.recordPath(sb.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove pod %s record: %w", sb.ID, err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove pod %s: %w", sb.ID, errors.Join(errs...))
	}
	return nil
}

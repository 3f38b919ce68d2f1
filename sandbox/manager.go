package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/criserver/criserver/atomicfile"
	"github.com/criserver/criserver/cgroups"
	"github.com/criserver/criserver/cni"
	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/reservation"
)

// Network attaches pods to the pod network (cni.Manager).
type Network interface {
	Attach(ctx context.Context, pod cni.Pod) (cni.Result, error)
	Detach(ctx context.Context, pod cni.Pod) error
}

// Options configures a Manager.
type Options struct {
	// Root holds the pod records (<root>/pods/<id>.json).
	Root string
	// State holds the namespace pins (<state>/{netns,ipcns,utsns,userns}/<id>) and
	// the pod files and shm mount (<state>/pods/<id>/{hostname,resolv.conf,
	// hosts,shm}): they are made again for a new pod after a reboot.
	State string
	// CgroupDriver is cgroups.Cgroupfs or cgroups.Systemd.
	CgroupDriver cgroups.Driver
	Network      Network
	// HasHandler tells whether a runtime handler is configured.
	HasHandler func(name string) bool
	// InfraBinary runs the infra process ("" = /proc/self/exe, which must
	// call RunInfra when started as InfraArgv0).
	InfraBinary string
	// ShmSize of a pod's /dev/shm in bytes (0 = DefaultShmSize).
	ShmSize int64
	// HostResolvConf and HostHosts are the host's files ("" = /etc/...).
	HostResolvConf, HostHosts string
	// BeforeListed, when set, runs once a pod is made and before anyone
	// can see it (NRI's RunPodSandbox); an error undoes the pod and fails
	// Run.
	BeforeListed func(context.Context, *Sandbox) error
}

// Manager runs the pod sandboxes of one daemon and keeps their index.
type Manager struct {
	opts Options

	// names reserves each pod's metadata key while it is made and after.
	names *reservation.Names

	mu       sync.Mutex
	pods     map[string]*Sandbox
	podLocks map[string]*sync.Mutex // per pod: serialises stop/remove
}

// New loads the pod records under opts.Root and returns the Manager.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.ShmSize == 0 {
		opts.ShmSize = DefaultShmSize
	}
	if opts.HostResolvConf == "" {
		opts.HostResolvConf = "/etc/resolv.conf"
	}
	if opts.HostHosts == "" {
		opts.HostHosts = "/etc/hosts"
	}
	if opts.CgroupDriver == "" {
		opts.CgroupDriver = cgroups.Cgroupfs
	}
	if opts.InfraBinary == "" {
		opts.InfraBinary = defaultInfraBinary()
	}
	if opts.HasHandler == nil {
		opts.HasHandler = oci.DefaultConfig().HasHandler
	}
	m := &Manager{
		opts:     opts,
		pods:     map[string]*Sandbox{},
		names:    reservation.New(),
		podLocks: map[string]*sync.Mutex{},
	}
	for _, d := range []string{m.podsDir(), m.statePodsDir(), m.pinDir(nsNet), m.pinDir(nsIPC), m.pinDir(nsUTS), m.pinDir(nsUser)} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) podsDir() string             { return filepath.Join(m.opts.Root, "pods") }
func (m *Manager) recordPath(id string) string { return atomicfile.RecordPath(m.podsDir(), id) }
func (m *Manager) statePodsDir() string        { return filepath.Join(m.opts.State, "pods") }
func (m *Manager) stateDir(id string) string   { return filepath.Join(m.statePodsDir(), id) }
func (m *Manager) shmPath(id string) string    { return filepath.Join(m.stateDir(id), "shm") }
func (m *Manager) pinDir(k nsKind) string      { return filepath.Join(m.opts.State, k.name+"ns") }
func (m *Manager) pinPath(k nsKind, id string) string {
	return filepath.Join(m.pinDir(k), id)
}

// Get returns a copy of pod id, or ErrNotFound.
func (m *Manager) Get(id string) (*Sandbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.pods[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return s.clone(), nil
}

// List returns copies of every pod, oldest first.
func (m *Manager) List() []*Sandbox {
	m.mu.Lock()
	out := make([]*Sandbox, 0, len(m.pods))
	for _, s := range m.pods {
		out = append(out, s.clone())
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b *Sandbox) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// podLock returns the lock that serialises changes to pod id.
func (m *Manager) podLock(id string) *sync.Mutex {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.podLocks[id]
	if !ok {
		l = &sync.Mutex{}
		m.podLocks[id] = l
	}
	return l
}

// setState changes the state of a pod in the index.
func (m *Manager) update(s *Sandbox) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.pods[s.ID]; ok {
		m.pods[s.ID] = s.clone()
	}
}

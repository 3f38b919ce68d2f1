package cri

import (
	"fmt"
	"sync"

	"google.golang.org/grpc/metadata"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/sandbox"
)

// eventBufferSize is how many events a slow subscriber may lag behind
// before it is dropped (the kubelet then falls back to relisting).
const eventBufferSize = 1024

// eventBus fans container events out to GetContainerEvents streams.
type eventBus struct {
	mu   sync.Mutex
	subs map[chan *runtime.ContainerEventResponse]struct{}
}

func newEventBus() *eventBus {
	return &eventBus{subs: map[chan *runtime.ContainerEventResponse]struct{}{}}
}

func (b *eventBus) subscribe() chan *runtime.ContainerEventResponse {
	ch := make(chan *runtime.ContainerEventResponse, eventBufferSize)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch
}

func (b *eventBus) unsubscribe(ch chan *runtime.ContainerEventResponse) {
	b.mu.Lock()
	if _, ok := b.subs[ch]; ok {
		delete(b.subs, ch)
		close(ch)
	}
	b.mu.Unlock()
}

func (b *eventBus) hasSubscribers() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) > 0
}

// publish sends ev to every subscriber; one too slow to take it is
// disconnected rather than blocking the container operation.
func (b *eventBus) publish(ev *runtime.ContainerEventResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			klog.InfoS("Dropping a container event subscriber that does not keep up")
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// podEventStatus is the pod part of an event, built from the pod index
// alone: calling PodSandboxStatus could wait on the pod's lock, which
// StopPodSandbox and RemovePodSandbox hold while they stop our containers.
func podEventStatus(pods podIndex, podID string) *runtime.PodSandboxStatus {
	if pods == nil {
		return nil
	}
	sb, err := pods.Get(podID)
	if err != nil {
		return nil
	}
	st := &runtime.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       sb.Metadata(),
		State:          runtime.PodSandboxState_SANDBOX_NOTREADY,
		CreatedAt:      sb.CreatedAt.UnixNano(),
		Labels:         sb.Config.GetLabels(),
		Annotations:    sb.Config.GetAnnotations(),
		RuntimeHandler: sb.RuntimeHandler,
	}
	if sb.State == sandbox.StateReady {
		st.State = runtime.PodSandboxState_SANDBOX_READY
	}
	if len(sb.IPs) > 0 {
		st.Network = &runtime.PodSandboxNetworkStatus{Ip: sb.IPs[0]}
		for _, ip := range sb.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip})
		}
	}
	return st
}

// GetContainerEvents implements runtime.RuntimeServiceServer: it streams
// created/started/stopped/deleted events until the client goes away.
func (s *Service) GetContainerEvents(_ *runtime.GetEventsRequest, stream runtime.RuntimeService_GetContainerEventsServer) error {
	ch := s.events.subscribe()
	defer s.events.unsubscribe(ch)
	// The header goes out once the subscription is registered: a client
	// that waits for it misses no event after that.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return fmt.Errorf("%w: container event subscriber fell behind", errResourceExhausted)
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

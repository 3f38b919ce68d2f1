package cri

import (
	"context"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"

	"github.com/criserver/criserver/oci"
	"github.com/criserver/criserver/sandbox"
	"github.com/criserver/criserver/streaming"
)

// Exec implements runtime.RuntimeServiceServer: it checks the container
// runs and returns a single-use URL of the stream server.
func (s *Service) Exec(_ context.Context, req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("%w: exec: cmd is empty", errInvalidArgument)
	}
	c, err := s.runningContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	srv, err := s.streamServer()
	if err != nil {
		return nil, err
	}
	// The session is bound to the full ID, not the prefix asked for.
	fwd := proto.Clone(req).(*runtime.ExecRequest)
	fwd.ContainerId = c.ID
	return srv.GetExec(fwd)
}

// Attach implements runtime.RuntimeServiceServer.
func (s *Service) Attach(_ context.Context, req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	c, err := s.runningContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if req.GetStdin() && !c.Config.GetStdin() {
		return nil, fmt.Errorf("%w: attach stdin: container %s was not created with stdin", errFailedPrecondition, c.ID)
	}
	if req.GetTty() != c.Config.GetTty() {
		return nil, fmt.Errorf("%w: attach tty=%v: container %s has tty=%v", errInvalidArgument, req.GetTty(), c.ID, c.Config.GetTty())
	}
	srv, err := s.streamServer()
	if err != nil {
		return nil, err
	}
	fwd := proto.Clone(req).(*runtime.AttachRequest)
	fwd.ContainerId = c.ID
	return srv.GetAttach(fwd)
}

// PortForward implements runtime.RuntimeServiceServer.
func (s *Service) PortForward(_ context.Context, req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, fmt.Errorf("%w: port-forward: invalid port %d", errInvalidArgument, p)
		}
	}
	if _, err := s.readyPod(req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	srv, err := s.streamServer()
	if err != nil {
		return nil, err
	}
	return srv.GetPortForward(req)
}

func (s *Service) streamServer() (*streaming.Server, error) {
	if s.opts.Streaming == nil {
		return nil, fmt.Errorf("%w: streaming is not configured", errUnimplemented)
	}
	return s.opts.Streaming, nil
}

// runningContainer finds a container that can take an exec or attach.
func (s *Service) runningContainer(id string) (*containerRecord, error) {
	c, err := s.containers.get(id)
	if err != nil {
		return nil, err
	}
	if st := c.State(); st != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("%w: container %s is not running (%s)", errFailedPrecondition, c.ID, st)
	}
	return c, nil
}

// readyPod finds a pod whose network can take a port-forward.
func (s *Service) readyPod(id string) (*sandbox.Sandbox, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: pod sandbox ID is required", errInvalidArgument)
	}
	sb, err := s.opts.Sandboxes.Get(id)
	if err != nil {
		return nil, err
	}
	if sb.State != sandbox.StateReady {
		return nil, fmt.Errorf("%w: pod sandbox %s is not ready", errFailedPrecondition, id)
	}
	return sb, nil
}

// StreamRuntime runs the sessions the stream server accepts. The checks
// are repeated: the container or pod may have stopped since the URL was
// handed out.
func (s *Service) StreamRuntime() streaming.Runtime { return streamRuntime{s} }

type streamRuntime struct{ s *Service }

func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	c, err := r.s.runningContainer(id)
	if err != nil {
		return err
	}
	opts := oci.ExecOptions{Cmd: cmd, TTY: tty, Resize: resize}
	// Leave nil streams as untyped nil: oci treats nil as "not wanted".
	if in != nil {
		opts.Stdin = in
	}
	if out != nil {
		opts.Stdout = out
	}
	if errw != nil {
		opts.Stderr = errw
	}
	code, err := r.s.opts.Runtime.Exec(ctx, c.Handler, c.ID, opts)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

func (r streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	c, err := r.s.runningContainer(id)
	if err != nil {
		return err
	}
	var opts oci.AttachOptions
	if in != nil && c.Config.GetStdin() {
		opts.Stdin = in
	}
	if out != nil {
		opts.Stdout = out
	}
	if errw != nil {
		opts.Stderr = errw
	}
	if tty {
		opts.Resize = resize
	}
	return r.s.opts.Runtime.Attach(ctx, c.ID, opts)
}

func (r streamRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	sb, err := r.s.readyPod(podID)
	if err != nil {
		return err
	}
	// A host-network pod has no namespace of its own: "" dials the host.
	return streaming.PortForward(ctx, sb.NetNSPath, port, stream)
}

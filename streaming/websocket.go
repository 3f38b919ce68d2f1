package streaming

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// protocolV5 is the remote command protocol kubectl 1.31+ speaks over
// WebSocket. It adds a CLOSE message that half-closes stdin; the library
// serves only up to v4 over WebSocket, so this file serves v5 itself.
const protocolV5 = "v5.channel.k8s.io"

// Channel numbers of the remote command protocol.
const (
	chanStdin = iota
	chanStdout
	chanStderr
	chanError
	chanResize
)

type streamOptions struct {
	stdin, stdout, stderr, tty bool
}

func optionsOf(req any) (streamOptions, bool) {
	switch r := req.(type) {
	case *runtime.ExecRequest:
		return streamOptions{r.Stdin, r.Stdout, r.Stderr, r.Tty}, true
	case *runtime.AttachRequest:
		return streamOptions{r.Stdin, r.Stdout, r.Stderr, r.Tty}, true
	}
	return streamOptions{}, false
}

func channel(on bool, t wsstream.ChannelType) wsstream.ChannelType {
	if on {
		return t
	}
	return wsstream.IgnoreChannel
}

// serveV5 runs an exec or attach session over WebSocket with the v5
// protocol: a binary message's first byte names the channel; the error
// channel carries the final metav1.Status; the resize channel carries
// JSON terminal sizes.
func serveV5(w http.ResponseWriter, r *http.Request, rt Runtime, req any, idleTimeout time.Duration) {
	opts, _ := optionsOf(req)
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		protocolV5: {Binary: true, Channels: []wsstream.ChannelType{
			channel(opts.stdin, wsstream.ReadChannel),
			channel(opts.stdout, wsstream.WriteChannel),
			channel(opts.stderr, wsstream.WriteChannel),
			wsstream.WriteChannel,
			channel(opts.tty, wsstream.ReadChannel),
		}},
	})
	conn.SetIdleTimeout(idleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		klog.ErrorS(err, "Open WebSocket stream session")
		return
	}
	defer conn.Close()
	// An empty message on the first writable channel tells the client
	// the session is up, as the library does for v4.
	first := chanError
	if opts.stdout {
		first = chanStdout
	} else if opts.stderr {
		first = chanStderr
	}
	if _, err := streams[first].Write(nil); err != nil {
		klog.ErrorS(err, "Start WebSocket stream session")
		return
	}

	var in io.Reader
	var out, errw io.WriteCloser
	if opts.stdin {
		in = streams[chanStdin]
	}
	if opts.stdout {
		out = streams[chanStdout]
	}
	if opts.stderr {
		errw = streams[chanStderr]
	}
	var resize chan TerminalSize
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if opts.tty {
		resize = make(chan TerminalSize)
		go decodeResizes(ctx, streams[chanResize], resize)
	}
	switch q := req.(type) {
	case *runtime.ExecRequest:
		err = rt.Exec(ctx, q.ContainerId, q.Cmd, in, out, errw, opts.tty, resize)
	case *runtime.AttachRequest:
		err = rt.Attach(ctx, q.ContainerId, in, out, errw, opts.tty, resize)
	}
	writeStatus(streams[chanError], err)
}

// decodeResizes forwards the client's terminal sizes until it stops
// sending or the session ends.
func decodeResizes(ctx context.Context, r io.Reader, out chan<- TerminalSize) {
	dec := json.NewDecoder(r)
	for {
		var sz remotecommand.TerminalSize
		if err := dec.Decode(&sz); err != nil {
			return
		}
		select {
		case out <- sz:
		case <-ctx.Done():
			return
		}
	}
}

// writeStatus sends the outcome as the metav1.Status the client decodes:
// Success, a NonZeroExitCode failure carrying the code, or an internal
// error.
func writeStatus(w io.Writer, err error) {
	st := metav1.Status{Status: metav1.StatusSuccess}
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.Exited():
		st = metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  remotecommand.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", exitErr),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type:    remotecommand.ExitCodeCauseType,
				Message: fmt.Sprint(exitErr.ExitStatus()),
			}}},
		}
	default:
		st = metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  metav1.StatusReasonInternalError,
			Code:    http.StatusInternalServerError,
			Message: err.Error(),
		}
	}
	b, jerr := json.Marshal(st)
	if jerr == nil {
		// The client may be gone already; there is no one left to tell.
		_, _ = w.Write(b)
	}
}

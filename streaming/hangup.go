package streaming

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
)

// cancelOnHangup gives each session a request context that is cancelled
// when the client's connection ends. The library passes that context to
// Exec and Attach; a hijacked connection is no longer watched by net/http,
// so without this a client that vanishes would leave its exec process
// running until it exits on its own.
func cancelOnHangup(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		next.ServeHTTP(&hangupWriter{ResponseWriter: w, cancel: cancel}, r.WithContext(ctx))
	})
}

// hangupWriter hands out a hijacked connection that cancels the session
// when reading from the client fails or the connection is closed.
type hangupWriter struct {
	http.ResponseWriter
	cancel context.CancelFunc
}

func (w *hangupWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	hc := &hangupConn{Conn: conn, buffered: rw.Reader, cancel: w.cancel}
	return hc, bufio.NewReadWriter(bufio.NewReader(hc), rw.Writer), nil
}

func (w *hangupWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// hangupConn reads what net/http had already buffered, then the
// connection itself; the first read error means the client is gone.
type hangupConn struct {
	net.Conn
	buffered *bufio.Reader
	cancel   context.CancelFunc
	once     sync.Once
}

func (c *hangupConn) Read(p []byte) (int, error) {
	if c.buffered != nil && c.buffered.Buffered() > 0 {
		return c.buffered.Read(p)
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(c.cancel)
	}
	return n, err
}

func (c *hangupConn) Close() error {
	c.once.Do(c.cancel)
	return c.Conn.Close()
}

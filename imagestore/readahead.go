package imagestore

import "io"

const (
	readAheadChunks = 4
	readAheadSize   = 256 << 10
)

// readAhead reads its source in a goroutine, a few chunks ahead of the
// consumer, so that download, decompression and hashing run while the
// unpacker is in file-creation syscalls: a single big layer then uses two
// cores instead of one.
type readAhead struct {
	chunks chan []byte // filled, in order; closed after err is set
	free   chan []byte
	stop   chan struct{}
	done   chan struct{}
	err    error
	cur    []byte
	buf    []byte // the buffer cur points into
}

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{
		chunks: make(chan []byte, readAheadChunks),
		free:   make(chan []byte, readAheadChunks),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for range readAheadChunks {
		ra.free <- make([]byte, readAheadSize)
	}
	go ra.fill(r)
	return ra
}

func (ra *readAhead) fill(r io.Reader) {
	defer close(ra.done)
	defer close(ra.chunks)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := fillBuf(r, buf)
		if n > 0 {
			select {
			case ra.chunks <- buf[:n]:
			case <-ra.stop:
				return
			}
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

// fillBuf reads until buf is full or r fails; unlike io.ReadFull it passes
// r's own error through (a truncated gzip stays io.ErrUnexpectedEOF, a
// clean end stays io.EOF).
func fillBuf(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		chunk, ok := <-ra.chunks
		if !ok {
			return 0, ra.err
		}
		ra.cur, ra.buf = chunk, chunk
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// abort stops the reader goroutine and waits for it. unblock must make a
// pending read of the source return (cancel the download); after abort
// returns nothing reads the source any more.
func (ra *readAhead) abort(unblock func()) {
	close(ra.stop)
	unblock()
	<-ra.done
}

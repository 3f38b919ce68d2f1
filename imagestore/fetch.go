package imagestore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/types"
	"k8s.io/klog/v2"

	"github.com/criserver/criserver/fault"
)

// progressLogInterval spaces the -v=2 progress lines of one layer.
const progressLogInterval = 5 * time.Second

var errStalled = errors.New("download stalled")

// flight is one layer download that concurrent pulls share.
type flight struct {
	done chan struct{}
	err  error
}

// ensureLayer makes the last layer of chain present, running fetch at most
// once however many pulls want the layer at the same time.
func (s *Store) ensureLayer(ctx context.Context, chain []digest.Digest, fetch func(context.Context) (*layer, error)) error {
	chainID := chain[len(chain)-1]
	for {
		s.mu.Lock()
		if s.layers[chainID] != nil {
			s.mu.Unlock()
			return nil
		}
		if f, ok := s.inflight[chainID]; ok {
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if f.err != nil && isCancel(f.err) && ctx.Err() == nil {
				continue // the pull that was downloading it gave up; this one takes over
			}
			return f.err
		}
		f := &flight{done: make(chan struct{})}
		s.inflight[chainID] = f
		s.mu.Unlock()

		l, err := fetch(ctx)
		s.mu.Lock()
		if err == nil {
			s.layers[chainID] = l
			s.usage.addLayer(l.usage)
		}
		f.err = err
		delete(s.inflight, chainID)
		s.mu.Unlock()
		close(f.done)
		return err
	}
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// fetchLayer streams one blob from the registry straight into the tar
// unpacker: no copy of the compressed blob touches the disk. The blob
// digest and the diff ID are both verified before the layer is committed;
// on any failure the temp dir goes and the layer does not exist.
func (s *Store) fetchLayer(ctx context.Context, src types.ImageSource, info types.BlobInfo, diffID digest.Digest, chain []digest.Digest) (*layer, error) {
	start := time.Now()
	tmp, err := s.newTempLayerDir()
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(tmp)
		}
	}()
	u, err := s.download(ctx, src, info, diffID, filepath.Join(tmp, "diff"))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", info.Digest, err)
	}
	l, err := s.commitLayer(tmp, chain, u)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", info.Digest, err)
	}
	committed = true
	fault.Crash("image.pull.after-layer")
	klog.V(2).InfoS("Layer unpacked", "blob", info.Digest, "chainID", l.chainID, "bytes", u.Bytes, "duration", time.Since(start))
	return l, nil
}

func (s *Store) download(ctx context.Context, src types.ImageSource, info types.BlobInfo, diffID digest.Digest, dir string) (layerUsage, error) {
	if err := info.Digest.Validate(); err != nil {
		return layerUsage{}, err
	}
	if err := diffID.Validate(); err != nil {
		return layerUsage{}, fmt.Errorf("diff ID: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(s.cfg.ProgressTimeout, cancel, info)
	defer wd.stop()

	rc, _, err := src.GetBlob(ctx, info, none.NoCache)
	if err != nil {
		return layerUsage{}, wd.explain(ctx, fmt.Errorf("fetch: %w", err))
	}
	defer rc.Close()
	wd.r = rc
	blobDigester := info.Digest.Algorithm().Digester()
	counted := &countingReader{r: io.TeeReader(wd, blobDigester.Hash())}
	u, err := unpackStream(counted, diffID, dir, func() { cancel(context.Canceled) })
	if err != nil {
		return layerUsage{}, wd.explain(ctx, err)
	}
	if info.Size > 0 && counted.n != info.Size {
		return layerUsage{}, fmt.Errorf("blob size %d, manifest says %d", counted.n, info.Size)
	}
	if got := blobDigester.Digest(); got != info.Digest {
		return layerUsage{}, fmt.Errorf("blob digest mismatch: got %s", got)
	}
	return u, nil
}

// unpackStream decompresses r (gzip, zstd or plain tar, told apart by their
// magic bytes rather than the media type, which registries get wrong),
// unpacks it into dir and verifies the uncompressed digest against diffID.
// It reads r to its end so that the caller's blob digest covers all of it.
//
// abort must make a blocked read of r return; it is called when the
// unpacker fails while the read-ahead goroutine may still be reading.
func unpackStream(r io.Reader, diffID digest.Digest, dir string, abort func()) (layerUsage, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	var tarStream io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return layerUsage{}, fmt.Errorf("gzip: %w", err)
		}
		defer gz.Close()
		tarStream = gz
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return layerUsage{}, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		tarStream = zr
	}
	diffDigester := diffID.Algorithm().Digester()
	ra := newReadAhead(io.TeeReader(tarStream, diffDigester.Hash()))
	u, err := unpackLayer(ra, dir)
	if err != nil {
		// Stop the goroutine before the deferred decoder Close calls.
		ra.abort(abort)
		return layerUsage{}, err
	}
	// Tar padding after the end marker still counts toward the diff ID.
	if _, err := io.Copy(io.Discard, ra); err != nil {
		return layerUsage{}, fmt.Errorf("read layer tail: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return layerUsage{}, fmt.Errorf("read blob tail: %w", err)
	}
	if got := diffDigester.Digest(); got != diffID {
		return layerUsage{}, fmt.Errorf("diff ID mismatch: got %s, config says %s", got, diffID)
	}
	return u, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// watchdog cancels a download that receives no byte for the progress
// timeout, and logs progress at -v=2.
type watchdog struct {
	r       io.Reader
	timeout time.Duration
	timer   *time.Timer
	info    types.BlobInfo

	mu      sync.Mutex
	n       int64
	lastLog time.Time
}

func newWatchdog(timeout time.Duration, cancel context.CancelCauseFunc, info types.BlobInfo) *watchdog {
	w := &watchdog{timeout: timeout, info: info, lastLog: time.Now()}
	w.timer = time.AfterFunc(timeout, func() { cancel(errStalled) })
	return w
}

func (w *watchdog) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.timer.Reset(w.timeout)
		w.mu.Lock()
		w.n += int64(n)
		if time.Since(w.lastLog) >= progressLogInterval {
			w.lastLog = time.Now()
			klog.V(2).InfoS("Downloading layer", "blob", w.info.Digest, "bytes", w.n, "size", w.info.Size)
		}
		w.mu.Unlock()
	}
	return n, err
}

func (w *watchdog) stop() { w.timer.Stop() }

// explain replaces the error a stalled download ends with by a clear one.
func (w *watchdog) explain(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errStalled) {
		return fmt.Errorf("no progress for %v: %w", w.timeout, errStalled)
	}
	return err
}

package imagestore

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
)

func TestReadAheadKeepsBytesAndErrors(t *testing.T) {
	data := make([]byte, 3*readAheadSize+12345)
	rand.New(rand.NewSource(1)).Read(data)
	got, err := io.ReadAll(newReadAhead(iotest.HalfReader(bytes.NewReader(data))))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, err %v; want %d identical bytes", len(got), err, len(data))
	}
	boom := errors.New("boom")
	ra := newReadAhead(io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(boom)))
	got, err = io.ReadAll(ra)
	if !errors.Is(err, boom) || len(got) != 1000 {
		t.Errorf("got %d bytes, err %v; want 1000 and the source's error", len(got), err)
	}
	ra = newReadAhead(io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(io.ErrUnexpectedEOF)))
	if _, err := io.ReadAll(ra); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncation: err %v, want io.ErrUnexpectedEOF passed through", err)
	}
}

func TestReadAheadAbortUnblocks(t *testing.T) {
	pr, pw := io.Pipe()
	ra := newReadAhead(pr)
	if _, err := pw.Write(make([]byte, 100)); err != nil { // taken by the goroutine
		t.Fatal(err)
	}
	// The goroutine is now blocked reading the pipe for more; abort must unblock it.
	ra.abort(func() { pw.CloseWithError(errors.New("cancelled")) })
}

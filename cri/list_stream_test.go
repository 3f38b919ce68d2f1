package cri

import (
	"errors"
	"slices"
	"testing"
)

func TestSendInBatches(t *testing.T) {
	type msg struct{ items []int }
	tests := []struct {
		n    int
		want []int // message sizes
	}{
		{0, nil},
		{1, []int{1}},
		{streamBatch, []int{streamBatch}},
		{streamBatch + 1, []int{streamBatch, 1}},
		{2*streamBatch + 50, []int{streamBatch, streamBatch, 50}},
	}
	for _, tt := range tests {
		items := make([]int, tt.n)
		for i := range items {
			items[i] = i
		}
		var sizes, seen []int
		err := sendInBatches(items, func(b []int) *msg { return &msg{b} }, func(m *msg) error {
			sizes = append(sizes, len(m.items))
			seen = append(seen, m.items...)
			return nil
		})
		if err != nil || !slices.Equal(sizes, tt.want) || !slices.Equal(seen, items) {
			t.Errorf("%d items: sizes %v, err %v; want sizes %v and every item once, in order", tt.n, sizes, err, tt.want)
		}
	}

	broken := errors.New("stream closed")
	sent := 0
	err := sendInBatches(make([]int, 3*streamBatch), func(b []int) *msg { return &msg{b} }, func(*msg) error {
		sent++
		return broken
	})
	if !errors.Is(err, broken) || sent != 1 {
		t.Errorf("after a failed send: err %v, %d sends; want the send's error after 1", err, sent)
	}
}

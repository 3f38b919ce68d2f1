package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// removeImage removes ref; absent is fine (the CRI makes RemoveImage
// idempotent; NotFound is tolerated all the same).
func removeImage(ctx context.Context, d *daemon, ref string) error {
	if err := d.img.RemoveImage(ctx, &runtime.ImageSpec{Image: ref}); err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("RemoveImage %s: %w", ref, err)
	}
	return nil
}

func pull(ctx context.Context, d *daemon, ref string) error {
	if _, err := d.img.PullImage(ctx, &runtime.ImageSpec{Image: ref}, nil, nil); err != nil {
		return fmt.Errorf("PullImage %s: %w", ref, err)
	}
	return nil
}

// pulls times a cold pull of the big image (none of its layers present)
// and a warm pull of the image built on it (only its top layer missing).
func (w *workload) pulls(ctx context.Context) {
	figCold := fmt.Sprintf("cold pull, %d MB image in %d layers", w.images.BigSize/1e6, w.images.BigN)
	figWarm := "warm pull, base layers present (+8 MiB layer)"
	for round := range w.opts.pullRounds {
		for _, d := range w.ordered(round) {
			if ctx.Err() != nil {
				return
			}
			w.pullRound(ctx, d, figCold, figWarm)
		}
	}
	for _, d := range w.daemons {
		for _, ref := range []string{w.images.BigApp, w.images.Big} {
			if err := removeImage(ctx, d, ref); err != nil {
				klog.ErrorS(err, "Remove the pull phase's image", "daemon", d.name, "image", ref)
			}
		}
	}
}

func (w *workload) pullRound(ctx context.Context, d *daemon, figCold, figWarm string) {
	for _, ref := range []string{w.images.BigApp, w.images.Big} {
		if err := removeImage(ctx, d, ref); err != nil {
			w.res.fail(figCold, unitMs, d.name, err)
			w.res.fail(figWarm, unitMs, d.name, naf("needs the image removed before a cold pull: %v", err))
			return
		}
	}
	// Let the removal's deferred work (containerd's content GC) finish
	// before the clock starts.
	time.Sleep(time.Second)
	t := time.Now()
	if err := pull(ctx, d, w.images.Big); err != nil {
		w.res.fail(figCold, unitMs, d.name, err)
		w.res.fail(figWarm, unitMs, d.name, naf("needs the cold pull, which failed: %v", err))
		return
	}
	w.res.add(figCold, unitMs, d.name, ms(time.Since(t)))
	t = time.Now()
	if err := pull(ctx, d, w.images.BigApp); err != nil {
		w.res.fail(figWarm, unitMs, d.name, err)
		return
	}
	w.res.add(figWarm, unitMs, d.name, ms(time.Since(t)))
}

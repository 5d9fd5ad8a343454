package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// readyTracker follows the Ready condition of every Customer of the
// benchmark's namespace through an informer (a watch, not polling, so that
// the benchmark adds little load to the API server it measures).
type readyTracker struct {
	mu       sync.Mutex
	ready    map[string]bool
	n        int
	startAt  time.Time
	doneAt   time.Time
	target   int
	dropped  int // Ready → not Ready transitions since resetDrops
	changed  chan struct{}
	informer cache.Informer
}

func watchReady(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (*readyTracker, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, DefaultNamespaces: map[string]cache.Config{benchNamespace: {}}})
	if err != nil {
		return nil, err
	}
	inf, err := c.GetInformer(ctx, &v1alpha1.Customer{})
	if err != nil {
		return nil, err
	}
	t := &readyTracker{ready: map[string]bool{}, changed: make(chan struct{}, 1), informer: inf}
	update := func(obj any) {
		cu, ok := obj.(*v1alpha1.Customer)
		if !ok {
			return
		}
		t.set(cu.Name, meta.IsStatusConditionTrue(cu.Status.Conditions, v1alpha1.ConditionReady))
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, obj any) { update(obj) },
		DeleteFunc: func(obj any) {
			if cu, ok := obj.(*v1alpha1.Customer); ok {
				t.set(cu.Name, false)
			}
		},
	}); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, errors.New("the benchmark's Customer informer did not sync")
	}
	return t, nil
}

// start marks the first create and the number of Customers to wait for.
func (t *readyTracker) start(at time.Time, target int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startAt, t.target = at, target
}

func (t *readyTracker) set(name string, ready bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := t.ready[name]
	if was == ready {
		return
	}
	t.ready[name] = ready
	if ready {
		t.n++
		if t.target > 0 && t.n >= t.target && t.doneAt.IsZero() {
			t.doneAt = time.Now()
		}
	} else {
		t.n--
		t.dropped++
	}
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *readyTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

func (t *readyTracker) allReadyAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.doneAt
}

func (t *readyTracker) resetDrops() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropped = 0
}

func (t *readyTracker) drops() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// waitAll waits until target Customers are Ready, reporting progress every
// ten seconds.
func (t *readyTracker) waitAll(ctx context.Context, target int, timeout time.Duration, progress func(int)) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		if n := t.count(); n >= target {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("only %d of %d Customers Ready after %s", t.count(), target, timeout)
		case <-tick.C:
			progress(t.count())
		case <-t.changed:
		}
	}
}

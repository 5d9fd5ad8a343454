package explorer

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// relistDelay is how long a coalesced watch event waits for a later one
// before it is delivered anyway, as a relist would.
const relistDelay = 1500 * time.Millisecond

// coalescingCache is the manager's cache with Sieve's unobserved states:
// an armed watch event (an update of a Customer) reaches no handler on its
// own; the handlers see the next event of that object instead, or, if none
// comes, the newest state after relistDelay, as after a watch that broke
// and a relist. The cache's store itself is never stale.
type coalescingCache struct {
	cache.Cache
	w *world
}

func (c *coalescingCache) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	inf, err := c.Cache.GetInformer(ctx, obj, opts...)
	if err != nil {
		return inf, err
	}
	return &coalescingInformer{Informer: inf, w: c.w}, nil
}

type coalescingInformer struct {
	cache.Informer
	w *world
}

func (i *coalescingInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	return i.Informer.AddEventHandler(i.wrap(h))
}

func (i *coalescingInformer) AddEventHandlerWithResyncPeriod(h toolscache.ResourceEventHandler, d time.Duration) (toolscache.ResourceEventHandlerRegistration, error) {
	return i.Informer.AddEventHandlerWithResyncPeriod(i.wrap(h), d)
}

func (i *coalescingInformer) AddEventHandlerWithOptions(h toolscache.ResourceEventHandler, o toolscache.HandlerOptions) (toolscache.ResourceEventHandlerRegistration, error) {
	return i.Informer.AddEventHandlerWithOptions(i.wrap(h), o)
}

func (i *coalescingInformer) wrap(h toolscache.ResourceEventHandler) toolscache.ResourceEventHandler {
	return &coalescingHandler{h: h, w: i.w, held: map[string]any{}, latest: map[string]any{}}
}

// coalescingHandler delivers events to one handler; held keeps, per
// object, the old side of an update not delivered yet.
type coalescingHandler struct {
	h      toolscache.ResourceEventHandler
	w      *world
	held   map[string]any
	latest map[string]any
}

func (c *coalescingHandler) OnAdd(obj any, initial bool) { c.h.OnAdd(obj, initial) }
func (c *coalescingHandler) OnDelete(obj any)            { c.h.OnDelete(obj) }

func (c *coalescingHandler) OnUpdate(oldObj, newObj any) {
	m, err := meta.Accessor(newObj)
	if err != nil {
		c.h.OnUpdate(oldObj, newObj)
		return
	}
	key := m.GetNamespace() + "/" + m.GetName()
	c.w.mu.Lock()
	if old, ok := c.held[key]; ok {
		// A later event carries the coalesced one.
		delete(c.held, key)
		oldObj = old
	}
	c.latest[key] = newObj
	mark := key + "@" + m.GetResourceVersion()
	drop := c.w.dropped[mark]
	if !drop && c.w.dropEvents > 0 {
		c.w.dropEvents--
		c.w.dropped[mark] = true
		c.w.stats["coalesced-watch-events"]++
		drop = true
	}
	if drop {
		c.held[key] = oldObj
	}
	c.w.mu.Unlock()
	if !drop {
		c.h.OnUpdate(oldObj, newObj)
		return
	}
	time.AfterFunc(relistDelay, func() {
		c.w.mu.Lock()
		old, ok := c.held[key]
		delete(c.held, key)
		newest := c.latest[key]
		c.w.mu.Unlock()
		if ok {
			c.h.OnUpdate(old, newest)
		}
	})
}

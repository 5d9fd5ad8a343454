package explorer

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// perturbingClient is the client the reconciler gets. It plays two of
// Sieve's perturbations: a stale state (an armed cached read of a
// Customer returns the copy from before the operator's last write of it)
// and an intermediate state (the manager stops right after an armed write
// to the API server, before the reconciler sees the answer).
type perturbingClient struct {
	client.Client
	w *world
}

func (c *perturbingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	cust, ok := obj.(*v1alpha1.Customer)
	if !ok {
		return c.Client.Get(ctx, key, obj, opts...)
	}
	if err := c.Client.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if old := c.w.older(key.String(), cust.ResourceVersion); old != nil && c.w.take(&c.w.staleReads) {
		c.w.count("stale-reads")
		old.DeepCopyInto(cust)
		return nil
	}
	c.w.remember(key.String(), cust)
	return nil
}

func (c *perturbingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if err := c.Client.Patch(ctx, obj, patch, opts...); err != nil {
		return err
	}
	return c.wrote(ctx, obj)
}

func (c *perturbingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := c.Client.Update(ctx, obj, opts...); err != nil {
		return err
	}
	return c.wrote(ctx, obj)
}

func (c *perturbingClient) Status() client.SubResourceWriter {
	return &perturbingStatus{SubResourceWriter: c.Client.Status(), c: c}
}

// wrote remembers the copy a write returned and, if a crash is armed for
// this write, stops the manager before the reconciler learns the answer.
func (c *perturbingClient) wrote(ctx context.Context, obj client.Object) error {
	if cust, ok := obj.(*v1alpha1.Customer); ok {
		c.w.remember(client.ObjectKeyFromObject(obj).String(), cust)
	}
	if c.w.countdown(&c.w.crashAPI) {
		c.w.count("crash-after-api-write")
		c.w.crashSoon()
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

type perturbingStatus struct {
	client.SubResourceWriter
	c *perturbingClient
}

func (s *perturbingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if err := s.SubResourceWriter.Patch(ctx, obj, patch, opts...); err != nil {
		return err
	}
	return s.c.wrote(ctx, obj)
}

func (s *perturbingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if err := s.SubResourceWriter.Update(ctx, obj, opts...); err != nil {
		return err
	}
	return s.c.wrote(ctx, obj)
}

// remember keeps a copy of a Customer the operator read or wrote, the last
// few per object.
func (w *world) remember(key string, c *v1alpha1.Customer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	vs := w.versions[key]
	if n := len(vs); n > 0 && vs[n-1].GetResourceVersion() == c.ResourceVersion {
		return
	}
	vs = append(vs, c.DeepCopy())
	if len(vs) > 4 {
		vs = vs[1:]
	}
	w.versions[key] = vs
}

// older returns a copy of key from before the newest one the operator has
// seen, if the cache just gave the newest, else nil: staleDepth copies
// back, or the oldest one remembered.
func (w *world) older(key, rv string) *v1alpha1.Customer {
	w.mu.Lock()
	defer w.mu.Unlock()
	vs := w.versions[key]
	if w.staleReads <= 0 || len(vs) < 2 || vs[len(vs)-1].GetResourceVersion() != rv {
		return nil
	}
	return vs[max(0, len(vs)-1-w.staleDepth)].(*v1alpha1.Customer)
}

package explorer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/explore"
)

// customers lists the world's Customers straight from the API server.
func (w *world) customers(ctx context.Context) ([]v1alpha1.Customer, error) {
	l := &v1alpha1.CustomerList{}
	if err := w.k8s.List(ctx, l, client.InNamespace(w.ns)); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// liveViews returns the views of every Customer now, by UID. A failed
// read gives none (the check then finds no prover and says so).
func (w *world) liveViews() map[string]explore.CustomerView {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := w.customers(ctx)
	if err != nil {
		w.violate(explore.Violation{Kind: "explorer-error", Detail: "listing Customers: " + err.Error()})
	}
	out := make(map[string]explore.CustomerView, len(cs))
	for i := range cs {
		v := w.view(&cs[i])
		out[v.UID] = v
	}
	return out
}

// credentials returns the instance and key c's credentials name now.
func (w *world) credentials(c *v1alpha1.Customer) (inst, key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.Spec.CredentialsSecretRef == nil {
		return instA, w.defaultKey
	}
	s, ok := w.secrets[c.Spec.CredentialsSecretRef.Name]
	if !ok {
		return "", ""
	}
	return s.inst, s.key
}

// view is what the ledger and the invariants see of c.
func (w *world) view(c *v1alpha1.Customer) explore.CustomerView {
	inst, key := w.credentials(c)
	v := explore.CustomerView{
		Name: c.Name, UID: string(c.UID),
		Company: c.Spec.Company, First: c.Spec.FirstName, Last: c.Spec.LastName, Email: c.Spec.Email,
		Policy: string(c.Spec.DeletionPolicy), Adoption: string(c.Spec.Adoption), CustomerID: c.Spec.CustomerID,
		Observe:     c.Spec.ManagementPolicy == v1alpha1.ManagementPolicyObserve,
		Paused:      c.Annotations[v1alpha1.PausedAnnotation] == "true",
		Deleting:    !c.DeletionTimestamp.IsZero(),
		NoFinalizer: !slices.Contains(c.Finalizers, v1alpha1.Finalizer),
		Account:     w.account(inst, key),
		Bound:       c.Status.CustomerID, BoundAccount: w.byFingerprint(c.Status.Account),
		Generation: c.Generation, Observed: c.Status.ObservedGeneration,
	}
	w.mu.Lock()
	v.PrevAccount = w.prev[c.Name]
	w.mu.Unlock()
	if r := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady); r != nil {
		v.Ready, v.Reason, v.Message = string(r.Status), r.Reason, r.Message
		if r.ObservedGeneration != c.Generation {
			v.Observed = min(v.Observed, r.ObservedGeneration)
		}
	}
	if s := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionStalled); s != nil && s.Status == metav1.ConditionTrue {
		v.Stalled = true
	}
	if p := proofOf(c); p != nil {
		v.PendingUID, v.PendingEmail = p.UID, p.Email
	}
	return v
}

// proofOf is the create-time proof c holds, read as the README states it,
// not through the operator's code: the annotation
// licensing.scriptlock.com/pending-create while no record is bound in
// status (void once one is), else status.pendingCreate. The ledger takes
// it as a proof only for the object whose UID it names.
func proofOf(c *v1alpha1.Customer) *v1alpha1.PendingCreate {
	if v, ok := c.Annotations[v1alpha1.PendingCreateAnnotation]; ok && c.Status.CustomerID == "" {
		p := &v1alpha1.PendingCreate{}
		if json.Unmarshal([]byte(v), p) == nil && p.UID == string(c.UID) {
			return p
		}
	}
	return c.Status.PendingCreate
}

// snapshot is everything the invariants look at: the Customers, every
// record of every account, the Events.
func (w *world) snapshot(ctx context.Context) (explore.Snapshot, []v1alpha1.Customer, error) {
	cs, err := w.customers(ctx)
	if err != nil {
		return explore.Snapshot{}, nil, err
	}
	s := explore.Snapshot{Records: map[explore.RecordRef]explore.Record{}}
	for i := range cs {
		s.Customers = append(s.Customers, w.view(&cs[i]))
	}
	w.mu.Lock()
	for inst, keys := range w.accounts {
		for key, name := range keys {
			a := explore.Account{Instance: inst, Name: name}
			for _, r := range w.insts[inst].sim.Records(key) {
				s.Records[explore.RecordRef{Account: a, ID: r.ID}] = record(a, r)
			}
		}
	}
	w.mu.Unlock()
	evs := &eventsv1.EventList{}
	if err := w.k8s.List(ctx, evs, client.InNamespace(w.ns)); err != nil {
		return explore.Snapshot{}, nil, err
	}
	for _, e := range evs.Items {
		s.Events = append(s.Events, explore.Event{UID: string(e.Regarding.UID), Name: e.Regarding.Name, Reason: e.Reason, Note: e.Note})
	}
	return s, cs, nil
}

// texts are every text the operator wrote in this world, for the key
// check: its log lines, Events, Customers (status included) and metrics.
func (w *world) texts(ctx context.Context, cs []v1alpha1.Customer) map[string]string {
	out := map[string]string{}
	out["log"], _ = logs.Since(w.logFrom)
	evs := &eventsv1.EventList{}
	if err := w.k8s.List(ctx, evs, client.InNamespace(w.ns)); err == nil {
		var b strings.Builder
		for _, e := range evs.Items {
			fmt.Fprintf(&b, "%s %s %s\n", e.Reason, e.Note, e.Regarding.Name)
		}
		out["Events"] = b.String()
	}
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%+v\n", c)
	}
	out["Customers"] = b.String()
	out["metrics"] = gatherMetrics()
	return out
}

package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// The revocation brake. Deleting a Customer with deletionPolicy Delete
// revokes every license of its customer; a GitOps prune gone wrong, a
// `kubectl delete -A`, a namespace teardown or the CRD's removal does that
// to hundreds at once. The brake gives each account a budget of DELETEs per
// window; past it, a deletion waits (Ready=False, reason DeletionHeld)
// until a person approves it or raises the budget. It sits in front of the
// one call that revokes (remove), so it holds every cause alike.
//
// The DELETEs of the window are kept in a Lease per account (named after
// its fingerprint) in the operator's namespace, written before the DELETE
// is sent: a crash after the write over-counts, which is the safe side,
// and a restart or a crash loop finds the window as it was. The Lease also
// holds the UIDs of the deletions it holds, written before DeletionHeld is
// reported: whether a deletion is held is read from there, never from
// the Customer's status (which a pass that ends in a transient error
// overwrites), and every error on the way fails closed. The Lease is
// covered by the leader-election Role, which already grants leases there.
//
// An approval names the deletion it approves: on the Customer, the value
// of the annotation is the Customer's own deletionTimestamp (RFC 3339),
// which nothing written before the deletion (a manifest in Git, a copied
// example) can know; on a namespace, it is an RFC 3339 time, and approves
// the deletions that began at or before it.

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get

// Annotations of a brake's Lease.
const (
	// brakeDeletesAnnotation holds the DELETEs of the window the budget
	// let through: a JSON object of Customer UID to RFC 3339 time.
	brakeDeletesAnnotation = "licensing.scriptlock.com/deletions"
	// brakeHeldAtAnnotation is the budget in force when a deletion was last
	// held: a held deletion stays held, window after window, until it is
	// approved or the budget is raised above this.
	brakeHeldAtAnnotation = "licensing.scriptlock.com/held-at-budget"
	// brakeHeldAnnotation holds the deletions held: a JSON array of
	// Customer UIDs, sorted. A UID leaves it when its deletion is let
	// through (approved, or a larger budget).
	brakeHeldAnnotation = "licensing.scriptlock.com/held"
	// brakeLeasePrefix starts the name of every brake Lease.
	brakeLeasePrefix = "scriptlock-deletions-"
)

// Defaults of --deletion-budget and --deletion-budget-window: a normal
// day offboards a handful of customers an hour per account, well inside
// 20; a mass accident (a prune of a whole directory, a namespace teardown,
// the CRD's removal) deletes tens to thousands at once, and is stopped
// after 20. An offboarding batch larger than that is approved on purpose.
const (
	DefaultDeletionBudget       = 20
	DefaultDeletionBudgetWindow = time.Hour
)

// Approvals, the change log's key "approval" of a deletion.
const (
	approvedByBudget     = "budget"
	approvedByAnnotation = "annotation"
	approvedByNamespace  = "namespace"
	approvedBudgetOff    = "budgetOff"
)

// deletionBrake holds the budget of every account.
type deletionBrake struct {
	reader client.Reader // the API server itself
	writer client.Client
	clock  clock.Clock
	ns     string
	budget int
	window time.Duration
	held   prometheus.Counter
	// recorder, if set, emits the Warning that namespace approvals cannot
	// be read (namespace-scoped mode). A plan's brake has none.
	recorder events.EventRecorder
	// dryRun: a plan's brake (newPlanBrake). It decides as the brake does,
	// on the Leases as they are, and keeps what it would write in memory
	// only: it writes no Lease and counts no held deletion in the metric,
	// so that the plan's later rows see the budget its earlier ones spent.
	dryRun bool

	mu       sync.Mutex
	accounts map[string]*accountBudget
}

// accountBudget is one account's window, as its Lease holds it.
type accountBudget struct {
	mu      sync.Mutex
	loaded  bool
	lease   *coordinationv1.Lease // nil: none yet
	deletes map[types.UID]time.Time
	heldAt  int
	// held: the Customers whose deletion is held.
	held map[types.UID]bool
}

func newDeletionBrake(reader client.Reader, writer client.Client, recorder events.EventRecorder, clk clock.Clock, ns string, budget int, window time.Duration) *deletionBrake {
	return &deletionBrake{
		reader: reader, writer: writer, recorder: recorder, clock: clk, ns: ns, budget: budget, window: window,
		held:     deletionsHeld(),
		accounts: map[string]*accountBudget{},
	}
}

// newPlanBrake returns the brake of a plan: admit decides as the
// manager's brake with the same budget would, reading the Leases of ns and
// the namespaces with reader, and writes nothing (dryRun; writer is only
// there to refuse a write should one ever be tried).
func newPlanBrake(reader client.Reader, writer client.Client, clk clock.Clock, ns string, budget int, window time.Duration) *deletionBrake {
	return &deletionBrake{
		reader: reader, writer: writer, clock: clk, ns: ns, budget: budget, window: window,
		dryRun: true, accounts: map[string]*accountBudget{},
	}
}

// deletionsHeld returns the counter of held deletions, registered once on
// controller-runtime's registry.
func deletionsHeld() prometheus.Counter {
	return registeredCounter(prometheus.CounterOpts{
		Name: "scriptlock_deletions_held_total",
		Help: "Deletions of Customers that the revocation brake held (reason DeletionHeld) because their account's deletion budget was spent; each waits for a person.",
	})
}

func (b *deletionBrake) of(account string) *accountBudget {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.accounts[account]
	if !ok {
		a = &accountBudget{}
		b.accounts[account] = a
	}
	return a
}

// admit decides whether c's DELETE of record id in account may be sent
// now. It returns ctx carrying the approval (for the change log), or a
// DeletionHeld error (stalled: it waits for a person), or another error
// (the Lease or the namespace could not be read, or the Lease written;
// retried, and nothing is sent).
//
// A deletion is held if the account's Lease lists c's UID (written
// before DeletionHeld was first reported), or if heldBefore (c's Ready
// reason as stored was DeletionHeld: a hold recorded by a version that
// kept it in the status only). A held deletion stays held until
// approved or the budget is raised above the budget that held it,
// whatever the window and whatever error a pass ends in.
func (b *deletionBrake) admit(ctx context.Context, c *v1alpha1.Customer, heldBefore bool, account, id string) (context.Context, error) {
	if b == nil || b.budget <= 0 {
		return withApproval(ctx, approvedBudgetOff), nil
	}
	a := b.of(account)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := b.load(ctx, a, account); err != nil {
		return ctx, err
	}
	held := heldBefore || a.held[c.UID]
	if customerApproved(c) {
		return withApproval(ctx, approvedByAnnotation), b.letGo(ctx, a, c, account)
	}
	spent, ok, err := b.take(ctx, a, c, held, account)
	if err != nil || ok {
		return withApproval(ctx, approvedByBudget), err
	}
	approved, unreadable, err := b.namespaceApproved(ctx, c)
	if err != nil {
		return ctx, err
	}
	if approved {
		return withApproval(ctx, approvedByNamespace), b.letGo(ctx, a, c, account)
	}
	heldAt := a.heldAt
	if err := b.markHeld(ctx, a, c, account); err != nil {
		return ctx, err
	}
	if !held && !b.dryRun {
		b.held.Inc()
	}
	why := fmt.Sprintf("%d DELETEs in this account in the last %s, its deletion budget (--deletion-budget=%d per --deletion-budget-window=%s)",
		spent, b.window, b.budget, b.window)
	if spent < b.budget {
		why = fmt.Sprintf("it was held when the budget was spent (%d per %s), and a held deletion stays held until approved or the budget is raised above %d",
			b.budget, b.window, max(heldAt, b.budget))
	}
	if v, ok := c.Annotations[v1alpha1.ApproveDeletionAnnotation]; ok {
		why += fmt.Sprintf("; its annotation %s=%q does not approve this deletion (an approval is the Customer's own deletionTimestamp)",
			v1alpha1.ApproveDeletionAnnotation, v)
	}
	if unreadable != "" {
		why += "; " + unreadable
		if b.recorder != nil {
			b.recorder.Eventf(c, nil, corev1.EventTypeWarning, reasonNamespaceApprovalUnreadable, "Delete", "%s", unreadable)
		}
	}
	return ctx, stuckf(v1alpha1.ReasonDeletionHeld,
		"deleting this Customer would revoke every license of ScriptLock customer %s (account %s), and the revocation brake holds it: %s. "+
			"If the licenses are to be revoked, run kubectl scriptlock approve-deletion, or annotate the Customer %s=<its metadata.deletionTimestamp> "+
			"or its namespace %s=<an RFC 3339 time at or after it>; "+
			"if not, set spec.deletionPolicy: Orphan to let it go and keep the record",
		id, account, why, v1alpha1.ApproveDeletionAnnotation, v1alpha1.ApproveDeletionAnnotation)
}

// reasonNamespaceApprovalUnreadable is the Warning Event of a held
// deletion whose namespace the operator may not read (namespace-scoped
// mode): an approval on the namespace is not seen.
const reasonNamespaceApprovalUnreadable = "NamespaceApprovalUnreadable"

// take counts c's DELETE in a's window, if the budget allows it, and
// persists the window (and c's release from the held deletions) before
// returning ok. spent is the number of DELETEs in the window. a.mu is
// held.
func (b *deletionBrake) take(ctx context.Context, a *accountBudget, c *v1alpha1.Customer, held bool, account string) (spent int, ok bool, err error) {
	now := b.clock.Now()
	for uid, t := range a.deletes {
		if !t.After(now.Add(-b.window)) {
			delete(a.deletes, uid)
		}
	}
	if _, ok := a.deletes[c.UID]; ok {
		// Counted already: a retry of a DELETE that failed, or was sent
		// before a crash.
		return len(a.deletes), true, nil
	}
	if len(a.deletes) >= b.budget || held && b.budget <= a.heldAt {
		return len(a.deletes), false, nil
	}
	wasHeld := a.held[c.UID]
	a.deletes[c.UID] = now
	delete(a.held, c.UID)
	if err := b.save(ctx, a, account); err != nil {
		delete(a.deletes, c.UID)
		if wasHeld {
			a.held[c.UID] = true
		}
		return 0, false, err
	}
	return len(a.deletes), true, nil
}

// letGo removes c from a's held deletions (it was approved), writing the
// Lease if it was there. a.mu is held.
func (b *deletionBrake) letGo(ctx context.Context, a *accountBudget, c *v1alpha1.Customer, account string) error {
	if !a.held[c.UID] {
		return nil
	}
	delete(a.held, c.UID)
	if err := b.save(ctx, a, account); err != nil {
		a.held[c.UID] = true
		return err
	}
	return nil
}

// markHeld records, in the Lease, that c's deletion is held and the
// budget in force that held it, before the hold is reported. a.mu is
// held.
func (b *deletionBrake) markHeld(ctx context.Context, a *accountBudget, c *v1alpha1.Customer, account string) error {
	if a.heldAt == b.budget && a.held[c.UID] {
		return nil
	}
	before, was := a.heldAt, a.held[c.UID]
	a.heldAt, a.held[c.UID] = b.budget, true
	if err := b.save(ctx, a, account); err != nil {
		a.heldAt = before
		if !was {
			delete(a.held, c.UID)
		}
		return err
	}
	return nil
}

// forget removes c from the held deletions of account, if it is there:
// c is let go without a DELETE (deletionPolicy Orphan, an observer, a
// record it cannot prove its own), so its hold is over. A stale entry
// holds nothing (a UID is never reused), so a failure is only logged.
func (b *deletionBrake) forget(ctx context.Context, c *v1alpha1.Customer, account string) {
	if b == nil || b.budget <= 0 || account == "" {
		return
	}
	a := b.of(account)
	a.mu.Lock()
	defer a.mu.Unlock()
	err := b.load(ctx, a, account)
	if err == nil {
		err = b.letGo(ctx, a, c, account)
	}
	if err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("could not remove a released deletion from the brake's held deletions; it holds nothing", "error", err.Error())
	}
}

// load reads a's Lease once (after a start, or after a write lost a race
// with another manager).
func (b *deletionBrake) load(ctx context.Context, a *accountBudget, account string) error {
	if a.loaded {
		return nil
	}
	lease := &coordinationv1.Lease{}
	err := b.reader.Get(ctx, client.ObjectKey{Namespace: b.ns, Name: brakeLeasePrefix + account}, lease)
	switch {
	case apierrors.IsNotFound(err):
		a.lease, a.deletes, a.heldAt, a.held = nil, map[types.UID]time.Time{}, 0, map[types.UID]bool{}
	case err != nil:
		return fmt.Errorf("reading the deletion budget of account %s (Lease %s/%s%s): %w", account, b.ns, brakeLeasePrefix, account, err)
	default:
		a.lease, a.deletes, a.heldAt, a.held = lease, map[types.UID]time.Time{}, 0, map[types.UID]bool{}
		var stamps map[types.UID]time.Time
		if raw := lease.Annotations[brakeDeletesAnnotation]; raw != "" {
			if err := json.Unmarshal([]byte(raw), &stamps); err != nil {
				// Unreadable: count the budget as spent, the safe side.
				ctrl.LoggerFrom(ctx).Error(err, "the deletion budget's Lease cannot be read; taking the budget as spent", "lease", lease.Name)
				stamps = map[types.UID]time.Time{}
				for i := range b.budget {
					stamps[types.UID("unreadable-"+strconv.Itoa(i))] = b.clock.Now()
				}
			}
		}
		for uid, t := range stamps {
			a.deletes[uid] = t
		}
		if n, err := strconv.Atoi(lease.Annotations[brakeHeldAtAnnotation]); err == nil {
			a.heldAt = n
		}
		if raw := lease.Annotations[brakeHeldAnnotation]; raw != "" {
			var uids []types.UID
			if err := json.Unmarshal([]byte(raw), &uids); err != nil {
				// Unreadable: which deletions are held is not known, so
				// none is let through until the Lease is fixed.
				return fmt.Errorf("reading the held deletions of account %s (Lease %s/%s, annotation %s): %w",
					account, b.ns, lease.Name, brakeHeldAnnotation, err)
			}
			for _, uid := range uids {
				a.held[uid] = true
			}
		}
	}
	a.loaded = true
	return nil
}

// save writes a's window to its Lease, guarded by its resourceVersion: a
// manager that lost a race reads the Lease again and decides anew. A
// plan's brake (dryRun) keeps the window in memory only.
func (b *deletionBrake) save(ctx context.Context, a *accountBudget, account string) error {
	if b.dryRun {
		return nil
	}
	raw, err := json.Marshal(a.deletes)
	if err != nil {
		return err
	}
	held := slices.Sorted(maps.Keys(a.held))
	if held == nil {
		held = []types.UID{}
	}
	rawHeld, err := json.Marshal(held)
	if err != nil {
		return err
	}
	lease := a.lease
	if lease == nil {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
			Namespace: b.ns, Name: brakeLeasePrefix + account,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "scriptlock-customer-operator", "app.kubernetes.io/component": "deletion-brake"},
		}}
	} else {
		lease = lease.DeepCopy()
	}
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[brakeDeletesAnnotation] = string(raw)
	lease.Annotations[brakeHeldAtAnnotation] = strconv.Itoa(a.heldAt)
	lease.Annotations[brakeHeldAnnotation] = string(rawHeld)
	if a.lease == nil {
		err = b.writer.Create(ctx, lease)
	} else {
		err = b.writer.Update(ctx, lease)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		a.loaded = false
		return &pending{retryAfter: throttledRetry, wait: waitBrakeLease, msg: "the deletion budget's Lease was changed by another manager; reading it again"}
	}
	if err != nil {
		a.loaded = false
		return fmt.Errorf("writing the deletion budget of account %s (Lease %s/%s): %w", account, b.ns, lease.Name, err)
	}
	a.lease = lease
	return nil
}

// namespaceApproved says whether c's namespace approves its deletion:
// its annotation is an RFC 3339 time at or after the deletion began (a
// deletion not begun yet, in a plan, begins now). A namespace the
// operator may not read (namespace-scoped mode) approves nothing, and
// unreadable says so; any other failure to read it is an error (the
// deletion stays held).
func (b *deletionBrake) namespaceApproved(ctx context.Context, c *v1alpha1.Customer) (approved bool, unreadable string, err error) {
	n := &corev1.Namespace{}
	err = b.reader.Get(ctx, client.ObjectKey{Name: c.Namespace}, n)
	switch {
	case apierrors.IsForbidden(err):
		return false, "namespace approvals cannot be read: forbidden (the operator may not get namespace " + c.Namespace + "); approve each Customer", nil
	case apierrors.IsNotFound(err):
		return false, "", nil
	case err != nil:
		return false, "", fmt.Errorf("reading namespace %s for %s: %w", c.Namespace, v1alpha1.ApproveDeletionAnnotation, err)
	}
	until, perr := time.Parse(time.RFC3339, n.Annotations[v1alpha1.ApproveDeletionAnnotation])
	if perr != nil {
		return false, "", nil
	}
	began := b.clock.Now()
	if !c.DeletionTimestamp.IsZero() {
		began = c.DeletionTimestamp.Time
	}
	return !began.After(until), "", nil
}

// customerApproved says whether c carries an approval of this deletion:
// its annotation's value is its own deletionTimestamp, in RFC 3339.
func customerApproved(c *v1alpha1.Customer) bool {
	if c.DeletionTimestamp.IsZero() {
		return false
	}
	t, err := time.Parse(time.RFC3339, c.Annotations[v1alpha1.ApproveDeletionAnnotation])
	return err == nil && t.Equal(c.DeletionTimestamp.Time)
}

// wasHeld says whether c's deletion is held already.
func wasHeld(c *v1alpha1.Customer) bool {
	cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	return cond != nil && cond.Reason == v1alpha1.ReasonDeletionHeld
}

// withApproval returns ctx carrying what let a deletion past the
// revocation brake, for the change log.
func withApproval(ctx context.Context, how string) context.Context {
	return context.WithValue(ctx, approvalKey{}, how)
}

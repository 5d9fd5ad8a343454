package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

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
// and a restart or a crash loop finds the window as it was. The Lease is
// covered by the leader-election Role, which already grants leases there.

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
}

func newDeletionBrake(reader client.Reader, writer client.Client, clk clock.Clock, ns string, budget int, window time.Duration) *deletionBrake {
	return &deletionBrake{
		reader: reader, writer: writer, clock: clk, ns: ns, budget: budget, window: window,
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
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "scriptlock_deletions_held_total",
		Help: "Deletions of Customers that the revocation brake held (reason DeletionHeld) because their account's deletion budget was spent; each waits for a person.",
	})
	if err := metrics.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
				return existing
			}
		}
	}
	return c
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
// (the Lease could not be read or written; retried).
//
// held says whether c's deletion was held before this pass (its Ready
// reason as stored, DeletionHeld): a held deletion stays held until
// approved or the budget is raised, whatever the window.
func (b *deletionBrake) admit(ctx context.Context, c *v1alpha1.Customer, held bool, account, id string) (context.Context, error) {
	if b == nil || b.budget <= 0 {
		return withApproval(ctx, approvedBudgetOff), nil
	}
	if c.Annotations[v1alpha1.ApproveDeletionAnnotation] == "true" {
		return withApproval(ctx, approvedByAnnotation), nil
	}
	a := b.of(account)
	spent, heldAt, ok, err := b.take(ctx, a, c, held, account)
	if err != nil || ok {
		return withApproval(ctx, approvedByBudget), err
	}
	if approved, err := b.namespaceApproved(ctx, c.Namespace); err != nil || approved {
		return withApproval(ctx, approvedByNamespace), err
	}
	if !held && !b.dryRun {
		b.held.Inc()
	}
	if err := b.markHeld(ctx, a, account); err != nil {
		return ctx, err
	}
	why := fmt.Sprintf("%d DELETEs in this account in the last %s, its deletion budget (--deletion-budget=%d per --deletion-budget-window=%s)",
		spent, b.window, b.budget, b.window)
	if spent < b.budget {
		why = fmt.Sprintf("it was held when the budget was spent (%d per %s), and a held deletion stays held until approved or the budget is raised above %d",
			b.budget, b.window, heldAt)
	}
	return ctx, stuckf(v1alpha1.ReasonDeletionHeld,
		"deleting this Customer would revoke every license of ScriptLock customer %s (account %s), and the revocation brake holds it: %s. "+
			"If the licenses are to be revoked, annotate the Customer %s=true (or its namespace, for all of its Customers), or run kubectl scriptlock approve-deletion; "+
			"if not, set spec.deletionPolicy: Orphan to let it go and keep the record",
		id, account, why, v1alpha1.ApproveDeletionAnnotation)
}

// take counts c's DELETE in a's window, if the budget allows it, and
// persists the window before returning ok. spent is the number of DELETEs
// in the window, heldAt the budget at the last hold.
func (b *deletionBrake) take(ctx context.Context, a *accountBudget, c *v1alpha1.Customer, held bool, account string) (spent, heldAt int, ok bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := b.load(ctx, a, account); err != nil {
		return 0, 0, false, err
	}
	now := b.clock.Now()
	for uid, t := range a.deletes {
		if !t.After(now.Add(-b.window)) {
			delete(a.deletes, uid)
		}
	}
	if _, ok := a.deletes[c.UID]; ok {
		// Counted already: a retry of a DELETE that failed, or was sent
		// before a crash.
		return len(a.deletes), a.heldAt, true, nil
	}
	if len(a.deletes) >= b.budget || held && b.budget <= a.heldAt {
		return len(a.deletes), a.heldAt, false, nil
	}
	a.deletes[c.UID] = now
	if err := b.save(ctx, a, account); err != nil {
		delete(a.deletes, c.UID)
		return 0, 0, false, err
	}
	return len(a.deletes), a.heldAt, true, nil
}

// markHeld records that the budget in force held a deletion.
func (b *deletionBrake) markHeld(ctx context.Context, a *accountBudget, account string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.heldAt == b.budget {
		return nil
	}
	before := a.heldAt
	a.heldAt = b.budget
	if err := b.save(ctx, a, account); err != nil {
		a.heldAt = before
		return err
	}
	return nil
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
		a.lease, a.deletes, a.heldAt = nil, map[types.UID]time.Time{}, 0
	case err != nil:
		return fmt.Errorf("reading the deletion budget of account %s (Lease %s/%s%s): %w", account, b.ns, brakeLeasePrefix, account, err)
	default:
		a.lease, a.deletes, a.heldAt = lease, map[types.UID]time.Time{}, 0
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
	if a.lease == nil {
		err = b.writer.Create(ctx, lease)
	} else {
		err = b.writer.Update(ctx, lease)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		a.loaded = false
		return &pending{retryAfter: throttledRetry, msg: "the deletion budget's Lease was changed by another manager; reading it again"}
	}
	if err != nil {
		a.loaded = false
		return fmt.Errorf("writing the deletion budget of account %s (Lease %s/%s): %w", account, b.ns, lease.Name, err)
	}
	a.lease = lease
	return nil
}

// namespaceApproved says whether namespace ns carries the approval
// annotation. A namespace the operator may not read (namespace-scoped
// mode) approves nothing.
func (b *deletionBrake) namespaceApproved(ctx context.Context, ns string) (bool, error) {
	n := &corev1.Namespace{}
	err := b.reader.Get(ctx, client.ObjectKey{Name: ns}, n)
	switch {
	case apierrors.IsForbidden(err), apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading namespace %s for %s: %w", ns, v1alpha1.ApproveDeletionAnnotation, err)
	}
	return n.Annotations[v1alpha1.ApproveDeletionAnnotation] == "true", nil
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

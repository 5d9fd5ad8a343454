package explorer

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/explore"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

// Steps that do not apply to the world as it is (editing a Customer that
// does not exist, copying onto a name that does) do nothing, so that any
// subsequence of a history, as the shrinker makes, still runs.

func emailOf(arg string) string { return arg + "@example.com" }

func (w *world) get(ctx context.Context, name string) (*v1alpha1.Customer, bool) {
	c := &v1alpha1.Customer{}
	if err := w.k8s.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: name}, c); err != nil {
		return nil, false
	}
	return c, true
}

// edit applies f to the newest copy of name, retrying on conflicts; false
// when there is no such Customer or f says there is nothing to do.
func (w *world) edit(ctx context.Context, name string, f func(*v1alpha1.Customer) bool) bool {
	done := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, ok := w.get(ctx, name)
		if !ok || !c.DeletionTimestamp.IsZero() || !f(c) {
			return nil
		}
		done = true
		return w.k8s.Update(ctx, c)
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
		w.violate(explore.Violation{Kind: "explorer-error", Detail: fmt.Sprintf("editing %s: %v", name, err)})
	}
	return done && err == nil
}

// do runs one step and reports whether it changed anything.
func (w *world) do(ctx context.Context, s explore.Step) bool {
	switch s.Op {
	case "apply":
		return w.apply(ctx, s.Arg(0), emailOf(s.Arg(1)), v1alpha1.DeletionPolicy(s.Arg(2)))
	case "edit":
		i, _ := strconv.Atoi(s.Arg(2))
		val := explore.Values[i%len(explore.Values)]
		return w.edit(ctx, s.Arg(0), func(c *v1alpha1.Customer) bool {
			switch s.Arg(1) {
			case "company":
				c.Spec.Company = val
			case "first":
				c.Spec.FirstName = val
			default:
				c.Spec.LastName = val
			}
			return true
		})
	case "email":
		return w.edit(ctx, s.Arg(0), func(c *v1alpha1.Customer) bool { c.Spec.Email = emailOf(s.Arg(1)); return true })
	case "policy":
		return w.edit(ctx, s.Arg(0), func(c *v1alpha1.Customer) bool {
			c.Spec.DeletionPolicy = v1alpha1.DeletionPolicy(s.Arg(1))
			return true
		})
	case "copy":
		return w.copy(ctx, s.Arg(0), s.Arg(1))
	case "replace":
		return w.replace(ctx, s.Arg(0))
	case "delete":
		return w.delete(ctx, s.Arg(0))
	case "pause", "unpause":
		return w.edit(ctx, s.Arg(0), func(c *v1alpha1.Customer) bool {
			if s.Op == "pause" {
				metav1.SetMetaDataAnnotation(&c.ObjectMeta, v1alpha1.PausedAnnotation, "true")
				return true
			}
			_, had := c.Annotations[v1alpha1.PausedAnnotation]
			delete(c.Annotations, v1alpha1.PausedAnnotation)
			return had
		})
	case "observe":
		return w.edit(ctx, s.Arg(0), func(c *v1alpha1.Customer) bool {
			c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
			return true
		})
	case "manage":
		var uid string
		ok := w.edit(ctx, s.Arg(0), func(c *v1alpha1.Customer) bool {
			if c.Spec.ManagementPolicy != v1alpha1.ManagementPolicyObserve {
				return false
			}
			c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyManage
			uid = string(c.UID)
			return true
		})
		if ok {
			w.led.Consented(uid)
		}
		return ok
	case "setid":
		other, ok := w.get(ctx, s.Arg(1))
		if !ok || other.Status.CustomerID == "" {
			return false
		}
		return w.edit(ctx, s.Arg(0), func(c *v1alpha1.Customer) bool {
			if c.Spec.CustomerID != "" {
				return false
			}
			c.Spec.CustomerID = other.Status.CustomerID
			return true
		})
	case "adopt":
		return w.edit(ctx, s.Arg(0), func(c *v1alpha1.Customer) bool {
			c.Spec.Adoption = v1alpha1.AdoptionIfExists
			return true
		})
	case "point":
		return w.point(ctx, s.Arg(0), s.Arg(1))
	case "rotate":
		return w.rotate(ctx)
	case "defaultkey":
		return w.changeDefaultKey(ctx)
	case "restore":
		return w.restore(ctx, s.Arg(0))
	case "swap":
		return w.swap(ctx, s.Arg(0), s.Arg(1))
	case "massdelete":
		cs, _ := w.customers(ctx)
		for _, c := range cs {
			w.delete(ctx, c.Name)
		}
		return len(cs) > 0
	case "drift", "remotedelete":
		return w.outOfBand(ctx, s.Op, s.Arg(0))
	case "urlkey":
		return w.keyInURL(ctx)
	default:
		return w.perturb(ctx, s)
	}
}

func (w *world) apply(ctx context.Context, name, email string, policy v1alpha1.DeletionPolicy) bool {
	if _, ok := w.get(ctx, name); ok {
		return w.edit(ctx, name, func(c *v1alpha1.Customer) bool {
			c.Spec.Email, c.Spec.DeletionPolicy = email, policy
			return true
		})
	}
	c := &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns},
		Spec: v1alpha1.CustomerSpec{
			Company: explore.Values[0], FirstName: "Example", LastName: "Customer", Email: email, DeletionPolicy: policy,
		},
	}
	return w.k8s.Create(ctx, c) == nil
}

// copy is `kubectl get -o yaml` of from, renamed to to and created: the
// spec, labels, annotations and finalizers come along; the status cannot.
func (w *world) copy(ctx context.Context, from, to string) bool {
	src, ok := w.get(ctx, from)
	if _, exists := w.get(ctx, to); !ok || exists {
		return false
	}
	c := &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Name: to, Namespace: w.ns, Labels: src.Labels, Annotations: src.Annotations, Finalizers: src.Finalizers},
		Spec:       src.Spec,
	}
	return w.k8s.Create(ctx, c) == nil
}

// replace is `kubectl replace` from Git: the manifest has no finalizer and
// no annotations the operator or a person added since.
func (w *world) replace(ctx context.Context, name string) bool {
	return w.edit(ctx, name, func(c *v1alpha1.Customer) bool {
		c.Finalizers, c.Annotations = nil, nil
		return true
	})
}

func (w *world) delete(ctx context.Context, name string) bool {
	c, ok := w.get(ctx, name)
	if !ok || !c.DeletionTimestamp.IsZero() {
		return false
	}
	return w.k8s.Delete(ctx, c) == nil
}

// restore: the object is lost without its finalizer running (a namespace
// force-deleted, etcd restored) and restored from a backup without its
// status: a new object, a new UID.
func (w *world) restore(ctx context.Context, name string) bool {
	c, ok := w.get(ctx, name)
	if !ok {
		return false
	}
	w.led.Forced(string(c.UID))
	spec := c.Spec
	_ = w.k8s.Patch(ctx, c, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
	_ = w.k8s.Delete(ctx, c)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := w.get(ctx, name); !ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return w.k8s.Create(ctx, &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns}, Spec: spec}) == nil
}

// swap exchanges the emails of two Customers in one commit.
func (w *world) swap(ctx context.Context, a, b string) bool {
	ca, okA := w.get(ctx, a)
	cb, okB := w.get(ctx, b)
	if !okA || !okB || strings.EqualFold(ca.Spec.Email, cb.Spec.Email) {
		return false
	}
	ea, eb := ca.Spec.Email, cb.Spec.Email
	w.edit(ctx, a, func(c *v1alpha1.Customer) bool { c.Spec.Email = eb; return true })
	w.edit(ctx, b, func(c *v1alpha1.Customer) bool { c.Spec.Email = ea; return true })
	return true
}

// secretName is the Kubernetes name of one of explore.Secrets.
func secretName(s string) string { return "sl-" + s }

// ensureSecret creates the Secret named by which, and what it points at:
// another account at the same URL is filled with the default account's
// records, same ids and data (accounts filled from one CRM in one order);
// the clone instance is made from instance A as it is now.
func (w *world) ensureSecret(ctx context.Context, which string) {
	w.mu.Lock()
	_, done := w.secrets[secretName(which)]
	w.mu.Unlock()
	if done {
		return
	}
	var ref secretRef
	switch which {
	case "default":
		w.mu.Lock()
		ref = secretRef{inst: instA, key: w.defaultKeyOfAccountLocked(instA, acctDefault)}
		w.mu.Unlock()
	case "other":
		w.fillOther()
		ref = secretRef{inst: instA, key: w.otherKey}
	case "clone":
		w.mu.Lock()
		if w.insts[instC] == nil {
			c := w.insts[instA].sim.Clone()
			w.addInstance(instC, c)
			w.accounts[instC] = map[string]string{}
			for k, v := range w.accounts[instA] {
				w.accounts[instC][k] = v
			}
		}
		ref = secretRef{inst: instC, key: w.defaultKeyOfAccountLocked(instC, acctDefault)}
		w.mu.Unlock()
	}
	w.writeSecret(ctx, secretName(which), ref)
}

func (w *world) defaultKeyOfAccountLocked(inst, name string) string {
	for k, n := range w.accounts[inst] {
		if n == name {
			return k
		}
	}
	return ""
}

// fillOther copies the default account's records into the other account,
// the first time it is used.
func (w *world) fillOther() {
	a := w.insts[instA].sim
	w.mu.Lock()
	defKey := w.defaultKeyOfAccountLocked(instA, acctDefault)
	w.mu.Unlock()
	if len(a.Records(w.otherKey)) > 0 {
		return
	}
	for _, r := range a.Records(defKey) {
		a.Put(w.otherKey, r)
	}
}

func (w *world) writeSecret(ctx context.Context, name string, ref secretRef) {
	w.mu.Lock()
	w.secrets[name] = ref
	u := w.insts[ref.inst].url
	w.mu.Unlock()
	if ref.keyInURL {
		pu, _ := url.Parse(u)
		pu.User = url.User(ref.key)
		u = pu.String()
	}
	data := map[string][]byte{controllers.SecretKeyAPIKey: []byte(ref.key), controllers.SecretKeyURL: []byte(u)}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name}}
	if err := w.k8s.Get(ctx, client.ObjectKeyFromObject(s), s); err == nil {
		s.Data = data
		_ = w.k8s.Update(ctx, s)
		return
	}
	s.Data = data
	_ = w.k8s.Create(ctx, s)
}

// point sets c's credentialsSecretRef ("none": the default account).
func (w *world) point(ctx context.Context, name, which string) bool {
	if which != "none" {
		w.ensureSecret(ctx, which)
	}
	return w.edit(ctx, name, func(c *v1alpha1.Customer) bool {
		w.notePrev(c)
		if which == "none" {
			c.Spec.CredentialsSecretRef = nil
		} else {
			c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: secretName(which)}
		}
		return true
	})
}

// notePrev remembers where c's credentials pointed before this step.
func (w *world) notePrev(c *v1alpha1.Customer) {
	a := w.account(w.credentials(c))
	w.mu.Lock()
	w.prev[c.Name] = a
	w.mu.Unlock()
}

// notePrevAll remembers where every Customer's credentials pointed before
// a change of credentials in this step, and returns the Customers.
func (w *world) notePrevAll(ctx context.Context) []v1alpha1.Customer {
	cs, _ := w.customers(ctx)
	for i := range cs {
		w.notePrev(&cs[i])
	}
	return cs
}

// repointed tells the ledger where the credentials of cs, the Customers
// there just before a change of credentials, point now: one that goes
// before the next snapshot (a deletion under way) went with these, and a
// deletion under credentials naming another account keeps its record.
func (w *world) repointed(cs []v1alpha1.Customer) {
	for i := range cs {
		w.led.Repointed(string(cs[i].UID), w.account(w.credentials(&cs[i])))
	}
}

// rotate gives the default account of instance A a new key (the old one is
// refused from now on) and puts it wherever the old one was: the
// operator's default and the Secrets of that account.
func (w *world) rotate(ctx context.Context) bool {
	cs := w.notePrevAll(ctx)
	defer w.repointed(cs)
	w.mu.Lock()
	old := w.defaultKeyOfAccountLocked(instA, acctDefault)
	w.rotations++
	nk := fmt.Sprintf("%s-rotated-%d", strings.TrimSuffix(old, "-key"), w.rotations)
	w.keys = append(w.keys, nk)
	delete(w.accounts[instA], old)
	w.accounts[instA][nk] = acctDefault
	wasDefault := w.defaultKey == old
	if wasDefault {
		w.defaultKey = nk
	}
	var update []string
	for name, s := range w.secrets {
		if s.inst == instA && s.key == old {
			update = append(update, name)
		}
	}
	w.mu.Unlock()
	w.led.Rotated(explore.Account{Instance: instA, Name: acctDefault})
	w.insts[instA].sim.RotateKey(old, nk)
	if wasDefault {
		w.mgrMu.Lock()
		w.pool.SetDefaultAPIKey(nk)
		w.mgrMu.Unlock()
	}
	for _, name := range update {
		w.mu.Lock()
		ref := w.secrets[name]
		w.mu.Unlock()
		ref.key = nk
		w.writeSecret(ctx, name, ref)
	}
	return true
}

// changeDefaultKey makes the operator's default key the other account's
// (the same URL): a key from the wrong account pasted into the default.
func (w *world) changeDefaultKey(ctx context.Context) bool {
	w.mu.Lock()
	same := w.defaultKey == w.otherKey
	w.mu.Unlock()
	if same {
		return false
	}
	cs := w.notePrevAll(ctx)
	w.fillOther()
	w.mu.Lock()
	w.defaultKey = w.otherKey
	w.mu.Unlock()
	w.mgrMu.Lock()
	w.pool.SetDefaultAPIKey(w.otherKey)
	w.mgrMu.Unlock()
	w.repointed(cs)
	return true
}

// keyInURL writes the other account's key into its Secret's url as well
// (https://KEY@host, the curl habit).
func (w *world) keyInURL(ctx context.Context) bool {
	w.ensureSecret(ctx, "other")
	w.mu.Lock()
	ref := w.secrets[secretName("other")]
	w.mu.Unlock()
	ref.keyInURL = true
	w.writeSecret(ctx, secretName("other"), ref)
	return true
}

// outOfBand edits or deletes name's bound record in ScriptLock directly.
func (w *world) outOfBand(ctx context.Context, op, name string) bool {
	c, ok := w.get(ctx, name)
	if !ok || c.Status.CustomerID == "" {
		return false
	}
	inst, key := w.credentials(c)
	if inst == "" {
		return false
	}
	s := w.insts[inst].sim
	if op == "remotedelete" {
		return s.DeleteOutOfBand(key, c.Status.CustomerID)
	}
	if !s.EditOutOfBand(key, c.Status.CustomerID, func(r *scriptlock.Customer) { r.Company = "Drifted Co." }) {
		return false
	}
	w.led.Drifted(explore.RecordRef{Account: w.account(inst, key), ID: c.Status.CustomerID})
	return true
}

// perturb arms a perturbation or injects a ScriptLock fault.
func (w *world) perturb(ctx context.Context, s explore.Step) bool {
	n, _ := strconv.Atoi(s.Arg(0))
	a := w.insts[instA].sim
	switch s.Op {
	case "crash":
		n, _ = strconv.Atoi(s.Arg(1))
		w.mu.Lock()
		if s.Arg(0) == "api" {
			w.crashAPI = n
		} else {
			w.crashSL = n
		}
		w.mu.Unlock()
	case "stale":
		w.mu.Lock()
		w.staleReads, w.staleDepth = n, 1
		w.mu.Unlock()
	case "lagstart":
		w.mu.Lock()
		w.staleReads, w.staleDepth = 3, 3
		w.mu.Unlock()
		w.restart()
	case "drop":
		w.mu.Lock()
		w.dropEvents = n
		w.mu.Unlock()
	case "fail":
		status, _ := strconv.Atoi(s.Arg(1))
		ra, _ := strconv.Atoi(s.Arg(2))
		target := map[string][2]string{
			"GET": {"GET", sim.RouteCustomerID}, "LIST": {"GET", sim.RouteCustomers}, "POST": {"POST", sim.RouteCustomer},
			"PUT": {"PUT", sim.RouteCustomerID}, "DELETE": {"DELETE", sim.RouteCustomerID},
		}[s.Arg(0)] // ANY: every method and route
		method, route := target[0], target[1]
		a.FailNext(method, route, 2, status, time.Duration(ra)*time.Second)
	case "lose":
		a.LoseNextCreate(map[string]sim.LoseMode{"500": sim.LoseWith500, "504": sim.LoseWith504, "drop": sim.LoseByDroppingConnection, "409": sim.LoseWithConflict}[s.Arg(0)])
	case "odd":
		a.AnswerNextCreate(n)
	case "late":
		a.CommitNextCreateLate(1500*time.Millisecond, 0)
	case "blip":
		a.VanishNext(2)
	case "vanish":
		// A failover to an empty replica while a resync period passes:
		// the drift detector's listing and every GET see no record.
		a.SetVanished(true)
		w.sweep()
		w.afterStep(func() { a.SetVanished(false) })
	case "del404":
		a.FailNext("DELETE", sim.RouteCustomerID, 1, 404, 0)
	case "slow", "silent":
		d := 300 * time.Millisecond
		if s.Op == "silent" {
			d = callTimeout + 500*time.Millisecond
		}
		a.SetLatency(d)
		w.afterStep(func() { a.SetLatency(0) })
	case "tidy":
		a.SetTidy(sim.CollapseSpaces)
		w.mu.Lock()
		w.tidy = sim.CollapseSpaces
		w.mu.Unlock()
	case "refuse":
		c, ok := w.get(ctx, s.Arg(0))
		if !ok || c.Status.CustomerID == "" {
			return false
		}
		inst, key := w.credentials(c)
		if inst == "" {
			return false
		}
		w.insts[inst].sim.RefuseDelete(key, c.Status.CustomerID, "customer has active licenses")
		w.mu.Lock()
		w.refused = append(w.refused, refusal{inst, key, c.Status.CustomerID})
		w.mu.Unlock()
	case "sweep":
		w.sweep()
	case "nothing":
	default:
		panic("explorer: no driver for step " + s.Op)
	}
	return true
}

func (w *world) afterStep(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.after = append(w.after, f)
}

// sweep makes a resync period pass for the drift detector.
func (w *world) sweep() {
	deadline := time.Now().Add(5 * time.Second)
	for !w.clock.HasWaiters() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	w.clock.Step(resyncPeriod)
}

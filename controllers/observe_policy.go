package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// managementPolicy: Observe. The operator binds the record (by
// spec.customerID, else by email), shows what ScriptLock holds in
// status.observed and which fields differ, and never POSTs, PUTs or
// DELETEs. An observer claims nothing: it never conflicts with another
// Customer and never blocks one that manages the record.

func observing(c *v1alpha1.Customer) bool {
	return c.Spec.ManagementPolicy == v1alpha1.ManagementPolicyObserve
}

// reportObserved shows what an observer found: the record in
// status.observed, and Ready=True when it matches the spec, else Differs
// (Stalled: a person decides) with the differing fields by name.
func (r *CustomerReconciler) reportObserved(c *v1alpha1.Customer, cl *scriptlock.Client, rec scriptlock.Customer, obs observation) {
	key := client.ObjectKeyFromObject(c)
	if !obs.fromMemory {
		// The drift detector compares the listing with what was observed,
		// so a change in ScriptLock updates the status within a period.
		r.memory.synced(key, cl, credentialsVia(c), rec, r.Clock.Now())
	}
	r.stalled.reset(key)
	r.retries.reset(key)
	fields := differingFields(rec, desired(c))
	if rec.ID != c.Status.CustomerID || cl.Account() != c.Status.Account {
		// Another record: the digest of the one last synced while
		// managing says nothing about it (heldWhileManaging).
		c.Status.SyncedDigest = ""
	}
	c.Status.CustomerID, c.Status.Account, c.Status.URL, c.Status.PendingCreate = rec.ID, cl.Account(), cl.BaseURL(), nil
	c.Status.Observed = &v1alpha1.ObservedRecord{
		Company: rec.Company, FirstName: rec.FirstName, LastName: rec.LastName, Email: rec.Email, DifferingFields: fields,
	}
	c.Status.ObservedGeneration = c.Generation
	if len(fields) == 0 {
		setReady(c, metav1.ConditionTrue, v1alpha1.ReasonObserved, fmt.Sprintf(
			"ScriptLock customer %s matches the spec (managementPolicy: Observe writes nothing)", rec.ID), false)
		return
	}
	msg := fmt.Sprintf("ScriptLock customer %s differs from the spec in %s; managementPolicy: Observe writes nothing (set it to Manage to write the spec)",
		rec.ID, strings.Join(fields, ", "))
	if prev := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady); prev != nil && prev.Reason == v1alpha1.ReasonDiffers && prev.Message != msg {
		// Other fields differ now; a change of reason is announced by the
		// status write itself.
		r.event(c, corev1.EventTypeWarning, v1alpha1.ReasonDiffers, "Observe", "%s", msg)
	}
	// A person decides: change the spec, or switch to Manage.
	setReady(c, metav1.ConditionFalse, v1alpha1.ReasonDiffers, msg, true)
}

// observeOnly finds the record an observer reports on: the one it saw
// before, in the same account; else spec.customerID; else the record with
// its email (case-insensitive) in the account's listing, shared with every
// other need of the last two periods.
// obs.fromMemory says the record was not read again (per-object mode,
// within a period of the last read).
func (r *CustomerReconciler) observeOnly(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (scriptlock.Customer, observation, error) {
	var obs observation
	if heldWhileManaging(c) {
		return r.observeHeld(ctx, c, cl, &obs)
	}
	if id := c.Status.CustomerID; id != "" && c.Status.Account == cl.Account() && (c.Spec.CustomerID == "" || c.Spec.CustomerID == id) {
		rec, found, err := r.observeRead(ctx, c, cl, id, &obs)
		if err != nil || obs.fromMemory || found && strings.EqualFold(rec.Email, c.Spec.Email) || found && c.Spec.CustomerID == id {
			return rec, obs, err
		}
	}
	if id := c.Spec.CustomerID; id != "" {
		rec, err := cl.Get(ctx, id)
		if scriptlock.IsNotFound(err) {
			return rec, obs, stuckf(v1alpha1.ReasonNotFound, "ScriptLock has no customer %s (spec.customerID)", id)
		}
		return rec, obs, err
	}
	recs, _, err := r.accounts.list(ctx, cl, r.listedSince(c), client.ObjectKeyFromObject(c))
	if err != nil {
		return scriptlock.Customer{}, obs, err
	}
	rec, found, err := withEmail(ctx, cl, recs, c.Spec.Email)
	if err != nil {
		return scriptlock.Customer{}, obs, err
	}
	if !found {
		return rec, obs, stuckf(v1alpha1.ReasonNotFound,
			"ScriptLock has no customer with email %q (managementPolicy: Observe binds by spec.customerID, else by email)", c.Spec.Email)
	}
	return rec, obs, nil
}

// heldWhileManaging says whether status.customerID is the record c managed
// before it was switched to Observe (a managed pass wrote
// status.syncedDigest for it; an observer's own binding has none). That
// record stays c's own while it observes: switched back to Manage, c
// manages it, and no other.
func heldWhileManaging(c *v1alpha1.Customer) bool {
	return c.Status.CustomerID != "" && c.Status.SyncedDigest != ""
}

// observeHeld reports on the record c managed before it was switched to
// Observe, and on no other: an observer's binding is what a switch back to
// Manage takes (the switch is the consent to manage the record observed),
// so moving it to another record would hand c a second record while its
// own is still there (explorer seed 801965: managed record 1, observed,
// credentials pointed at another account holding a copy, managed again:
// the copy taken, the own record left). As for a managed Customer
// (observeBound), a change of credentials is not a proof: the record is
// followed into the new account only for a rotated key or an accepted
// account, else AccountChanged; a spec.customerID naming another record is
// a Conflict; an email that differs is reported (Differs), not looked up;
// a record not found is NotFound. Nothing is written either way.
func (r *CustomerReconciler) observeHeld(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, obs *observation) (scriptlock.Customer, observation, error) {
	id := c.Status.CustomerID
	if c.Spec.CustomerID != "" && c.Spec.CustomerID != id {
		return scriptlock.Customer{}, *obs, stuckf(v1alpha1.ReasonConflict,
			"spec.customerID %q differs from the record this Customer managed before it was switched to Observe (%q); create a new Customer to manage or observe another record",
			c.Spec.CustomerID, id)
	}
	if c.Status.Account != cl.Account() {
		rec, err := r.recordAfterMove(ctx, c, cl, id)
		obs.seen = err == nil
		return rec, *obs, err
	}
	rec, found, err := r.observeRead(ctx, c, cl, id, obs)
	if err != nil || found {
		return rec, *obs, err
	}
	return rec, *obs, stuckf(v1alpha1.ReasonNotFound,
		"ScriptLock has no customer %s, the record this Customer managed before it was switched to Observe; managementPolicy: Observe binds no other record in its place (set it to Manage: a record deleted outside the cluster is then created again)", id)
}

// observeRead reads the record id an observer is bound to in cl's account,
// or, in per-object mode within a period of the last read, answers with
// what status.observed says (obs.fromMemory: found). A requested pass, or
// a record on its own cadence, is always read.
func (r *CustomerReconciler) observeRead(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string, obs *observation) (scriptlock.Customer, bool, error) {
	if o := c.Status.Observed; o != nil && r.DriftDetection == DriftPerObject && !readsDirectly(c) {
		seen := scriptlock.Customer{ID: id, Company: o.Company, FirstName: o.FirstName, LastName: o.LastName, Email: o.Email}
		if left, ok := r.memory.syncedWithin(client.ObjectKeyFromObject(c), seen, r.ResyncPeriod, r.Clock.Now()); ok {
			obs.fromMemory, obs.recheckIn = true, left
			return seen, true, nil
		}
	}
	return r.read(ctx, c, cl, id, r.DriftDetection == DriftByList && !readsDirectly(c), obs)
}

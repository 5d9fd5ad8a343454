package controllers

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// A bound record that ScriptLock does not show is not taken as deleted on
// one answer: a lagging replica or a maintenance window answers an empty
// listing and 404 for records that exist. It is taken as deleted after
// VanishReads reads by id in a row found it missing, each at least
// VanishInterval after the one before; and not at all while the account's
// vanish breaker is open.
const (
	defaultVanishReads    = 3
	defaultVanishInterval = 10 * time.Second
)

// The vanish breaker of an account opens when at least breakerMin of its
// bound records are missing at once and they are at least half of the
// account's records the operator knows: one deleted record is recreated,
// an emptied account (a failover to an empty replica, a restored backup)
// is not.
const breakerMin = 3

// confirmVanished returns nil once the disappearance of c's bound record
// id is confirmed and may be acted on; until then a *pending error: the
// confirmation is still under way (RecordMissing), or too many records of
// the account are missing at once (RecordsVanished) and no person has
// confirmed with the recreate annotation.
func (r *CustomerReconciler) confirmVanished(c *v1alpha1.Customer, cl *scriptlock.Client, id string) error {
	r.accounts.markVanished(cl.Account(), client.ObjectKeyFromObject(c))
	if err := r.confirmMissing(c, id, "taken as deleted, and created again"); err != nil {
		return err
	}
	if n, known, open := r.accounts.breaker(cl.Account()); open && c.Annotations[v1alpha1.RecreateAnnotation] != "true" {
		return &pending{reason: v1alpha1.ReasonRecordsVanished, retryAfter: r.VanishInterval,
			msg: fmt.Sprintf("%d of the %d records of this ScriptLock account that Customers hold are missing at once (a failover to an empty replica, or another instance?); "+
				"creating none of them again until they reappear. If customer %s is really gone, annotate this Customer %s=true",
				n, known, id, v1alpha1.RecreateAnnotation)}
	}
	return nil
}

// confirmMissing counts one read that found c's record id missing and
// returns a *pending error (RecordMissing) until VanishReads reads in a
// row, each at least VanishInterval after the one before, found it
// missing: what is decided on a missing record (a recreate, or a deletion
// letting go without a DELETE) is decided on that, never on one answer.
// then says what follows a confirmation, for the message.
func (r *CustomerReconciler) confirmMissing(c *v1alpha1.Customer, id, then string) error {
	reads := r.memory.missingRead(client.ObjectKeyFromObject(c), id, r.Clock.Now(), r.VanishInterval)
	if reads < r.VanishReads {
		return &pending{reason: v1alpha1.ReasonRecordMissing, retryAfter: r.VanishInterval,
			msg: fmt.Sprintf("ScriptLock does not show customer %s (read %d of %d, %s apart); it is %s only if every read finds it missing",
				id, reads, r.VanishReads, r.VanishInterval, then)}
	}
	return nil
}

// heldRecordGone says whether record id, which another Customer holds in
// cl's account and the account's last listing lacks, is confirmed gone
// from that account, as a disappearance is confirmed: VanishReads reads by
// id in a row found it missing, each at least VanishInterval after the one
// before. Until then the listing is taken as lagging (listingLags) and no
// create is decided on it; but a holder that no longer reads the account
// (its credentials moved: AccountChanged, InvalidCredentials) never
// confirms its record gone itself, and every create in the account would
// wait for ever. It reads the record at most once per VanishInterval; a
// read that finds it calls the confirmation off. Never while the
// account's vanish breaker is open: with many records missing at once
// (a failover to an empty replica) nothing is created there.
func (r *CustomerReconciler) heldRecordGone(ctx context.Context, cl *scriptlock.Client, id string) (bool, error) {
	if _, _, open := r.accounts.breaker(cl.Account()); open {
		return false, nil
	}
	now := r.Clock.Now()
	reads, at := r.accounts.unfoundSoFar(cl.Account(), id)
	if reads >= r.VanishReads {
		return true, nil
	}
	if reads > 0 && now.Sub(at) < r.VanishInterval {
		return false, nil
	}
	rec, err := cl.Get(ctx, id)
	switch {
	case err == nil:
		// There: the listing lags.
		r.accounts.found(cl.Account(), now, rec)
		return false, nil
	case scriptlock.IsNotFound(err):
		return r.accounts.notFound(cl.Account(), id, now, r.VanishInterval) >= r.VanishReads, nil
	}
	return false, fmt.Errorf("reading ScriptLock customer %s, which another Customer holds and the account's listing lacks: %w", id, err)
}

package controllers

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// The change log: one structured line, on the logger named "changelog",
// for every POST, PUT and DELETE the operator sends to ScriptLock, with
// why it was sent. Events expire after an hour; these lines last as long as
// the logs are kept, and answer "who revoked the licenses of customer 42,
// and why" (docs/operations.md, "The change log").

// ChangeLogSchema is the version of the change log's line, its key
// "schema". Within a version keys are only ever added, never renamed,
// removed or given another meaning; anything else is a new version.
const ChangeLogSchema = "scriptlock.changelog/v1"

// The reasons of a write, the change log's key "reason".
const (
	// changeCreate: the first create of the Customer's record.
	changeCreate = "create"
	// changeCreateRetry: a create sent again after an earlier create's
	// answer was lost (its create-time proof is still held).
	changeCreateRetry = "createRetry"
	// changeRecreate: the bound record was deleted in ScriptLock (the
	// disappearance confirmed) and is created again.
	changeRecreate = "recreate"
	// changeSpecChange: the spec changed.
	changeSpecChange = "specChange"
	// changeDriftCorrection: the record was changed outside the cluster
	// and is put back to the spec.
	changeDriftCorrection = "driftCorrection"
	// changeAdoption: a record found (adopted, spec.customerID, the record
	// of a create whose answer was lost, one back after vanishing) is
	// written to the spec as it is taken over.
	changeAdoption = "adoption"
	// changeDeletion: the Customer was deleted with deletionPolicy Delete.
	changeDeletion = "deletion"
)

// change is why a write is sent, put in its context by the caller.
type change struct {
	customer   types.NamespacedName
	uid        types.UID
	generation int64
	reason     string
	// fields names the fields written (a create: those it sets; an
	// update: those that differed); values holds what was written.
	fields []string
	values scriptlock.Customer
	// personal are the values of the Customer's spec (its email, names,
	// company): scrubbed from ScriptLock's error message unless the log
	// holds values anyway.
	personal scriptlock.Customer
	// deletionPolicy and approval, for a deletion: what the spec said,
	// and what let it past the revocation brake.
	deletionPolicy string
	approval       string
}

type changeKey struct{}

// withChange returns ctx carrying why c's next write is sent: reason, the
// fields named and the record as written.
func withChange(ctx context.Context, c *v1alpha1.Customer, reason string, written scriptlock.Customer, fields []string) context.Context {
	ch := change{
		customer: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}, uid: c.UID, generation: c.Generation,
		reason: reason, fields: fields, values: written, personal: desired(c),
	}
	if reason == changeDeletion {
		ch.deletionPolicy = string(c.Spec.DeletionPolicy)
		if ch.deletionPolicy == "" {
			ch.deletionPolicy = string(v1alpha1.DeletionPolicyDelete)
		}
		ch.approval = approvalOf(ctx)
	}
	return context.WithValue(ctx, changeKey{}, ch)
}

// createReason is why c's create is sent; retry says that an earlier
// create of the same email by this object is still unanswered.
func createReason(c *v1alpha1.Customer, retry bool) string {
	switch {
	case retry:
		return changeCreateRetry
	case c.Status.FormerCustomerID != "":
		return changeRecreate
	}
	return changeCreate
}

// updateReason is why c's record, read as obs.record, is put to the spec,
// as the Events name it (Updated, DriftCorrected). It is decided from what
// differs, not from Ready (a retry after a failed PUT is what the first
// try was): the spec differs from what was last synced
// (status.syncedDigest), or the record is still as last synced, is a spec
// change; the record changed since it was last synced, with the spec as
// it was then, is a drift correction. A Customer synced by a version
// without status.syncedDigest falls back on its generation.
func updateReason(c *v1alpha1.Customer, obs observation) string {
	synced := c.Status.SyncedDigest
	switch {
	case obs.bind != "":
		return changeAdoption
	case obs.remoteDeleted != "":
		return changeRecreate
	case synced == "":
		if c.Status.ObservedGeneration == c.Generation && isReady(c) {
			return changeDriftCorrection
		}
		return changeSpecChange
	case digest(desired(c)) != synced || digest(obs.record) == synced:
		return changeSpecChange
	}
	return changeDriftCorrection
}

// fieldsSet names the fields a create of rec sets.
func fieldsSet(rec scriptlock.Customer) []string {
	var out []string
	for _, f := range recordFields(rec) {
		if f.value != "" {
			out = append(out, f.name)
		}
	}
	return out
}

type field struct{ name, value string }

func recordFields(rec scriptlock.Customer) []field {
	return []field{{"company", rec.Company}, {"firstName", rec.FirstName}, {"lastName", rec.LastName}, {"email", rec.Email}}
}

// ChangeLog writes the change log. Use its Observe as the ScriptLock
// client's Options.OnWrite.
type ChangeLog struct {
	log    logr.Logger
	values bool
}

// NewChangeLog returns a change log that writes to log (name it
// "changelog": ctrl.Log.WithName("changelog")). With values, each line also
// holds the values written (key "values"): personal data, off by default.
func NewChangeLog(log logr.Logger, values bool) *ChangeLog {
	return &ChangeLog{log: log, values: values}
}

// Observe writes the line of one write; it is a scriptlock.WriteObserver.
// The keys (schema scriptlock.changelog/v1):
//
//	schema          "scriptlock.changelog/v1"
//	operation       create, update or delete (method: POST, PUT, DELETE)
//	recordID        the record's id ("" for a create whose answer was lost)
//	account         the account fingerprint (never the key)
//	customer        namespace/name of the Customer; uid, generation
//	reason          create, createRetry, recreate, specChange,
//	                driftCorrection, adoption or deletion
//	fields          names of the fields written
//	values          (with --changelog-values only) field: value written
//	deletionPolicy  (deletions) the spec's deletionPolicy
//	approval        (deletions) budget, annotation, namespace or budgetOff
//	result          created, updated, unchanged, deleted, alreadyGone,
//	                conflict, notFound, rateLimited, refused, serverError,
//	                noAnswer, invalidAnswer (scriptlock_writes_total)
//	status          ScriptLock's HTTP status, 0 for no answer
//	error           the error, if any: the call, ScriptLock's status and
//	                the error's kind, then ScriptLock's message scrubbed
//	                of the key and, without values, of the Customer's
//	                values (its email, names, company, what was written)
//	durationSeconds time to the answer
func (l *ChangeLog) Observe(ctx context.Context, w scriptlock.Write) {
	ch, ok := ctx.Value(changeKey{}).(change)
	if !ok {
		ch.reason = "unknown"
	}
	customer := ""
	if ch.customer.Name != "" {
		customer = ch.customer.String()
	}
	kv := []any{
		"schema", ChangeLogSchema,
		"operation", w.Operation, "method", w.Method, "recordID", w.RecordID, "account", w.Account,
		"customer", customer, "uid", string(ch.uid), "generation", ch.generation,
		"reason", ch.reason, "fields", nonNil(ch.fields),
	}
	if l.values && len(ch.fields) > 0 {
		vals := map[string]string{}
		for _, f := range recordFields(ch.values) {
			for _, n := range ch.fields {
				if n == f.name {
					vals[n] = f.value
				}
			}
		}
		kv = append(kv, "values", vals)
	}
	if w.Operation == "delete" {
		kv = append(kv, "deletionPolicy", ch.deletionPolicy, "approval", ch.approval)
	}
	kv = append(kv, "result", string(w.Result), "status", w.StatusCode, "durationSeconds", w.Duration.Seconds())
	if w.Err != nil {
		msg := w.Err.Error()
		if !l.values {
			msg = scrubValues(w.Err, ch.values, ch.personal)
		}
		kv = append(kv, "error", msg)
	}
	l.log.Info("ScriptLock write", kv...)
}

// scrubValues returns err's text with every value of recs (of two
// characters or more) replaced by "[value]", case-insensitively: ScriptLock
// may echo what it was sent ("email a@example.com already used"), personal
// data the change log holds only with values on. A *scriptlock.Error keeps
// its call, status and kind, which hold no value.
func scrubValues(err error, recs ...scriptlock.Customer) string {
	var vals []string
	for _, rec := range recs {
		for _, f := range recordFields(rec) {
			if len(strings.TrimSpace(f.value)) >= 2 {
				vals = append(vals, strings.TrimSpace(f.value))
			}
		}
	}
	// Longest first: an email is scrubbed whole, not around a name in it.
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	scrub := func(s string) string {
		for _, v := range vals {
			s = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(v)).ReplaceAllLiteralString(s, "[value]")
		}
		return s
	}
	var se *scriptlock.Error
	if !errors.As(err, &se) {
		return scrub(err.Error())
	}
	e := *se
	e.Message = scrub(e.Message)
	if e.Err != nil {
		e.Err = errors.New(scrub(e.Err.Error()))
	}
	return e.Error()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type approvalKey struct{}

// approvalOf returns what let a deletion past the revocation brake, as put
// in ctx, or "".
func approvalOf(ctx context.Context) string {
	s, _ := ctx.Value(approvalKey{}).(string)
	return s
}

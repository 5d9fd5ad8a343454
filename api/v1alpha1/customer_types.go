package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations and the finalizer the operator reads or writes on a Customer.
const (
	// Finalizer keeps a Customer until its ScriptLock record is dealt with
	// according to spec.deletionPolicy.
	Finalizer = "licensing.scriptlock.com/finalizer"

	// PausedAnnotation, set to "true", stops every ScriptLock call and every
	// change to the object until it is removed.
	PausedAnnotation = "licensing.scriptlock.com/paused"

	// AcceptAccountAnnotation, set to an account fingerprint (as
	// status.account, shown in the AccountChanged condition), says that a
	// person accepts that account as the home of the record this Customer
	// holds: the binding carries over to the account the credentials now
	// name, if it holds the same id with this Customer's email.
	AcceptAccountAnnotation = "licensing.scriptlock.com/accept-account"

	// RecreateAnnotation, set to "true", lets a Customer held with reason
	// RecordsVanished create its record again although many records of
	// its account vanished at once: a person confirms they are really gone.
	RecreateAnnotation = "licensing.scriptlock.com/recreate"

	// DeletionProtectionAnnotation, set to "true", makes the shipped
	// ValidatingAdmissionPolicy refuse deletion of the object.
	DeletionProtectionAnnotation = "licensing.scriptlock.com/deletion-protection"

	// ApproveDeletionAnnotation lets a deletion that the revocation brake
	// holds (reason DeletionHeld) go ahead: a person confirms that the
	// licenses are to be revoked. Its value names the deletion approved:
	// on a Customer, the Customer's own metadata.deletionTimestamp (RFC
	// 3339), which nothing written before the deletion can know; on a
	// namespace, an RFC 3339 time, which approves the deletions of its
	// Customers begun at or before it. Any other value approves nothing.
	ApproveDeletionAnnotation = "licensing.scriptlock.com/approve-deletion"

	// ReconcileRequestAnnotation asks for an immediate pass that reads the
	// record from ScriptLock (no listing or memory), whatever the resync
	// period; any new value (by convention the current time, RFC 3339)
	// asks again. The value is echoed in status.lastHandledReconcileAt once
	// a pass handled it, even when nothing changed: the convention of
	// Flux's reconcile.fluxcd.io/requestedAt and Crossplane's
	// crossplane.io/reconcile-requested-at.
	ReconcileRequestAnnotation = "licensing.scriptlock.com/reconcile-requested-at"

	// DriftCheckIntervalAnnotation, a Go duration between 1m and 24h
	// ("5m", "1h30m"), makes the operator read this Customer's record by
	// itself at least that often, besides the account-wide resync period:
	// for the few records that matter more. A value outside those bounds
	// is clamped to them; one that is no duration is ignored.
	DriftCheckIntervalAnnotation = "licensing.scriptlock.com/drift-check-interval"

	// PendingCreateAnnotation is written by the operator, never by a
	// person: the create-time proof (a PendingCreate as JSON, with the
	// UID of the object that wrote it) of a create about to be sent,
	// written in the same metadata patch as the finalizer, before the
	// create. It proves something only for the object whose UID it names
	// (a copy or a restore has another UID), only while status.customerID
	// is empty (it is void once a record is bound, and removed before a
	// binding is ever cleared), and only as a PendingCreate does. A lost
	// answer copies it into status.pendingCreate, where a replace-style
	// update cannot drop it.
	PendingCreateAnnotation = "licensing.scriptlock.com/pending-create"
)

// DeletionPolicy says what happens to the ScriptLock record when its Customer
// is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete deletes the record, which revokes every license
	// of that customer.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan keeps the record and its licenses.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// AdoptionPolicy says whether an existing ScriptLock record with the same
// email may be taken over when a create is refused with 409 Conflict.
// +kubebuilder:validation:Enum=Never;IfExists
type AdoptionPolicy string

const (
	// AdoptionNever reports the conflict and leaves the existing record alone.
	AdoptionNever AdoptionPolicy = "Never"
	// AdoptionIfExists takes over the existing record and updates it to the spec.
	AdoptionIfExists AdoptionPolicy = "IfExists"
)

// ManagementPolicy says whether the operator writes to ScriptLock.
// +kubebuilder:validation:Enum=Manage;Observe
type ManagementPolicy string

const (
	// ManagementPolicyManage creates, updates and (with deletionPolicy:
	// Delete) deletes the record.
	ManagementPolicyManage ManagementPolicy = "Manage"
	// ManagementPolicyObserve never writes: it binds the record by
	// spec.customerID or by email and reports how it differs from the spec.
	ManagementPolicyObserve ManagementPolicy = "Observe"
)

// CustomerSpec is the desired ScriptLock customer record. It is the whole
// truth: a field left out is sent to ScriptLock as empty.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.customerID) || (has(self.customerID) && self.customerID == oldSelf.customerID)",message="spec.customerID is immutable once set: it cannot be changed or removed"
type CustomerSpec struct {
	// Company is the customer's company name.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="!self.matches('^\\\\s|\\\\s$')",message="must not begin or end with whitespace"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[[:cntrl:]]')",message="must not contain control characters"
	Company string `json:"company,omitempty"`

	// FirstName is the customer's first name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="!self.matches('^\\\\s|\\\\s$')",message="must not begin or end with whitespace"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[[:cntrl:]]')",message="must not contain control characters"
	FirstName string `json:"firstName"`

	// LastName is the customer's last name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="!self.matches('^\\\\s|\\\\s$')",message="must not begin or end with whitespace"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[[:cntrl:]]')",message="must not contain control characters"
	LastName string `json:"lastName"`

	// Email is the customer's email address. ScriptLock keeps emails unique
	// per account, compared case-insensitively.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:XValidation:rule="!self.matches('^\\\\s|\\\\s$')",message="must not begin or end with whitespace"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[[:cntrl:]]')",message="must not contain control characters"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$')",message="email must be a valid address such as customer@example.com"
	Email string `json:"email"`

	// DeletionPolicy says what deleting this object does to the ScriptLock
	// record: Delete removes it and revokes all of its licenses, Orphan
	// keeps it.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// Adoption says whether an existing record with the same email is taken
	// over (IfExists) or reported as a conflict (Never) when creating.
	// +optional
	// +kubebuilder:default=Never
	Adoption AdoptionPolicy `json:"adoption,omitempty"`

	// ManagementPolicy: Manage (default) keeps the record equal to the
	// spec; Observe never POSTs, PUTs or DELETEs, binds the record by
	// spec.customerID or else by email, and reports in status which fields
	// differ. Switching to Manage writes the spec at once; switching to
	// Observe stops writing and drops the finalizer without deleting.
	// +optional
	// +kubebuilder:default=Manage
	ManagementPolicy ManagementPolicy `json:"managementPolicy,omitempty"`

	// CustomerID names an existing ScriptLock record to manage instead of
	// creating one. Immutable once set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	CustomerID string `json:"customerID,omitempty"`

	// CredentialsSecretRef names a Secret in this Customer's namespace that
	// holds the ScriptLock account to use instead of the operator's default:
	// key apiKey (required), url and ca.crt (optional).
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`
}

// SecretReference names a Secret in the same namespace as the Customer.
type SecretReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// Condition types and reasons of a Customer.
const (
	// ConditionReady is True when the ScriptLock record exists and matches
	// the spec.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is still working
	// towards Ready (kstatus convention).
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot make progress
	// without a change from a person (kstatus convention).
	ConditionStalled = "Stalled"

	ReasonAvailable = "Available"
	// ReasonCreating: a create was sent and its outcome is not known yet
	// (a lost answer, a record ScriptLock does not list yet).
	ReasonCreating           = "Creating"
	ReasonConflict           = "Conflict"
	ReasonNotFound           = "NotFound"
	ReasonDeletionBlocked    = "DeletionBlocked"
	ReasonUnauthorized       = "Unauthorized"
	ReasonAPIError           = "APIError"
	ReasonRateLimited        = "RateLimited"
	ReasonInvalidCredentials = "InvalidCredentials"
	ReasonRemoteDeleted      = "RemoteDeleted"
	ReasonDeleting           = "Deleting"
	// ReasonAccountChanged: the credentials now name another account (or
	// another ScriptLock) than the one status.customerID was bound in, and
	// the record is not proven to be there; nothing is written.
	ReasonAccountChanged = "AccountChanged"
	// ReasonStoredDifferently: ScriptLock accepted a write but keeps
	// storing other values than the spec asks for; the operator stops
	// rewriting for this generation.
	ReasonStoredDifferently = "StoredDifferently"
	// ReasonInvalidID: a record id that cannot be used in a ScriptLock URL.
	ReasonInvalidID = "InvalidID"
	// ReasonObserved: managementPolicy: Observe, and the record matches the
	// spec; nothing is written.
	ReasonObserved = "Observed"
	// ReasonDiffers: managementPolicy: Observe, and the record differs from
	// the spec in the fields the message names; nothing is written.
	ReasonDiffers = "Differs"
	// ReasonRecordMissing: ScriptLock does not show the bound record, and
	// the disappearance is not confirmed yet (a lagging replica can answer
	// 404 for a record that exists): nothing is created until it is.
	ReasonRecordMissing = "RecordMissing"
	// ReasonRecordsVanished: many of the account's records vanished at once
	// (a failover to an empty replica, a wrong instance): the operator
	// recreates none of them until they reappear, or a person confirms
	// with the recreate annotation.
	ReasonRecordsVanished = "RecordsVanished"
	// ReasonChangedOutside: someone keeps changing the record in ScriptLock
	// back to other values (a second writer); the operator put it back as
	// often as it may in an hour and waits for a person.
	ReasonChangedOutside = "ChangedOutside"
	// ReasonRecordGone (an Event): the record was already gone when the
	// Customer was deleted (DELETE and a read both answered 404); nothing
	// was revoked by this deletion.
	ReasonRecordGone = "RecordGone"
	// ReasonDeletionHeld: deleting this Customer would revoke its licenses,
	// and its account's deletion budget (--deletion-budget per
	// --deletion-budget-window) is spent: the DELETE waits until a person
	// approves it (ApproveDeletionAnnotation) or raises the budget.
	ReasonDeletionHeld = "DeletionHeld"
)

// CustomerStatus is what the operator last observed.
type CustomerStatus struct {
	// CustomerID is the id of the ScriptLock record this object manages.
	// +optional
	CustomerID string `json:"customerID,omitempty"`

	// FormerCustomerID is the id of the record this Customer held before it
	// vanished from ScriptLock, kept until a replacement is bound: a record
	// with this id and this Customer's email, in the same account, is its
	// own again (a replica that lagged longer than the confirmation).
	// +optional
	FormerCustomerID string `json:"formerCustomerID,omitempty"`

	// Account identifies, without revealing the API key, the ScriptLock
	// account status.customerID lives in: the first 12 hex digits of
	// sha256(base URL + NUL + API key). A record id is only used in the
	// account it was bound in; when the credentials change, the record
	// must be found in the new account with this Customer's email before
	// anything is written there.
	// +optional
	Account string `json:"account,omitempty"`

	// URL is the ScriptLock base URL status.customerID lives at. A record
	// found under another URL is taken as this Customer's only if all its
	// fields equal the spec.
	// +optional
	URL string `json:"url,omitempty"`

	// SyncedDigest is the digest (as pendingCreate.digests) of the record's
	// fields when the operator last saw it equal to the spec: a rotated key
	// carries the binding over only to a record that still has them.
	// +optional
	SyncedDigest string `json:"syncedDigest,omitempty"`

	// PendingCreate is the create-time proof of a create whose answer was
	// lost, cleared once the record is bound. Before a create is sent the
	// proof is written, with the finalizer, in the annotation
	// licensing.scriptlock.com/pending-create (one write, bound to the
	// object's UID, so a copy proves nothing); a lost answer copies it
	// here, where a replace-style update cannot drop it. A proof written
	// here by an earlier version is honoured as before.
	// +optional
	PendingCreate *PendingCreate `json:"pendingCreate,omitempty"`

	// Observed is what ScriptLock holds for the record, written only with
	// managementPolicy: Observe, so that the status answers "what would
	// change if this Customer managed the record?".
	// +optional
	Observed *ObservedRecord `json:"observed,omitempty"`

	// LastHandledReconcileAt is the value of the annotation
	// licensing.scriptlock.com/reconcile-requested-at that the last pass
	// handled: equal to the annotation once a pass after the request has
	// checked the record against ScriptLock (read or written it) or set
	// Ready's reason from a failure, or, for a Customer being deleted, has
	// run. A pass held back before it reached ScriptLock (the operator's
	// rate limit or in-flight cap, a listing under way) leaves it as it
	// was, so the request stays pending.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// ObservedGeneration is the generation of the spec the conditions
	// describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (the record exists and matches the spec), and the
	// kstatus conditions Reconciling and Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ObservedRecord is a ScriptLock record's fields as last read.
type ObservedRecord struct {
	Company   string `json:"company,omitempty"`
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	Email     string `json:"email,omitempty"`
	// DifferingFields names the spec fields whose value ScriptLock does not
	// hold (company, firstName, lastName, email); empty when it matches.
	// +optional
	DifferingFields []string `json:"differingFields,omitempty"`
}

// PendingCreate proves which record a create produced when its answer was
// lost: a record is taken as the result only if this very object (UID) sent
// the create, to this account, and the record has the email and the fields
// (Digests) that were posted.
type PendingCreate struct {
	// UID of the object that sent the create.
	UID string `json:"uid"`
	// Account fingerprint the create was sent to (as status.account).
	Account string `json:"account"`
	// Email the create was sent with.
	Email string `json:"email"`
	// Digests of the fields posted by each attempt: the first 16 hex digits
	// of sha256 over company, first name, last name and email, lower case,
	// runs of whitespace made one space. At most 4.
	// +kubebuilder:validation:MaxItems=4
	Digests []string `json:"digests"`
	// Since is when the first of these creates was sent.
	Since metav1.Time `json:"since"`
}

// Customer is a customer record in the ScriptLock licensing service, kept
// equal to its spec by the operator.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=slc;slcustomer,categories=scriptlock
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`
// +kubebuilder:printcolumn:name="Company",type=string,JSONPath=`.spec.company`
// +kubebuilder:printcolumn:name="Customer ID",type=string,JSONPath=`.status.customerID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Customer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec CustomerSpec `json:"spec"`
	// Status is what the operator last observed. It defaults to
	// observedGeneration 0, so that a Customer the operator has not reached
	// yet reads as in progress to kstatus (Flux, kpt) rather than as
	// current.
	// +kubebuilder:default={observedGeneration: 0}
	Status CustomerStatus `json:"status,omitempty"`
}

// CustomerList is a list of Customers.
//
// +kubebuilder:object:root=true
type CustomerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Customer `json:"items"`
}

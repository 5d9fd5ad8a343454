package explore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
)

// Kind groups steps for the figures of a run.
type Kind string

// The kinds of step: what users do, Sieve's three perturbations of what the
// operator sees, and what ScriptLock does wrong.
const (
	User         Kind = "user"
	Intermediate Kind = "intermediate-state"
	Stale        Kind = "stale-state"
	Unobserved   Kind = "unobserved-state"
	Fault        Kind = "scriptlock-fault"
	Time         Kind = "time"
)

// The world a history plays in: Customer slots, emails, credentials
// Secrets and values, all small so that histories collide often.
const (
	// Customers is the number of Customer names c0..c3.
	Customers = 4
	// Emails is the number of emails e0..e4.
	Emails = 5
)

// Secrets are the credentials a Customer can be pointed at: the default
// account through a Secret, another account at the same URL (its records
// filled in the same order, so the same ids and emails), a cloned
// instance (the same keys, ids and data), or none (the default account).
var Secrets = []string{"default", "other", "clone", "none"}

// Values are what an edit of company, first or last name writes; the
// second has a run of spaces that a tidying back end collapses.
var Values = []string{"Example Inc.", "Two  Spaces Co.", "Acme", "Zed"}

// op describes one step: its kind, its weight in generated histories, and
// how its operands are drawn.
type op struct {
	kind   Kind
	weight int
	args   func(r *rand.Rand) []string
}

func cust(r *rand.Rand) string  { return fmt.Sprintf("c%d", r.IntN(Customers)) }
func email(r *rand.Rand) string { return fmt.Sprintf("e%d", r.IntN(Emails)) }
func pick(r *rand.Rand, from ...string) string {
	return from[r.IntN(len(from))]
}
func two(r *rand.Rand) []string {
	a := r.IntN(Customers)
	b := (a + 1 + r.IntN(Customers-1)) % Customers
	return []string{fmt.Sprintf("c%d", a), fmt.Sprintf("c%d", b)}
}
func one(r *rand.Rand) []string { return []string{cust(r)} }
func none(*rand.Rand) []string  { return nil }

// ops is every step the explorer knows, by name.
var ops = map[string]op{
	// What users do.
	"apply": {User, 14, func(r *rand.Rand) []string { return []string{cust(r), email(r), pick(r, "Delete", "Delete", "Orphan")} }},
	"edit": {User, 5, func(r *rand.Rand) []string {
		return []string{cust(r), pick(r, "company", "first", "last"), strconv.Itoa(r.IntN(len(Values)))}
	}},
	"email":  {User, 4, func(r *rand.Rand) []string { return []string{cust(r), email(r)} }},
	"policy": {User, 2, func(r *rand.Rand) []string { return []string{cust(r), pick(r, "Delete", "Orphan")} }},
	"copy":   {User, 3, two},
	// replace: kubectl replace from Git; the finalizer is dropped.
	"replace": {User, 2, one},
	"delete":  {User, 6, one},
	"pause":   {User, 1, one},
	"unpause": {User, 2, one},
	"observe": {User, 2, one},
	"manage":  {User, 2, one},
	// setid cN cM: cN.spec.customerID = cM's status.customerID.
	"setid": {User, 2, two},
	"adopt": {User, 2, one},
	// point cN SECRET: spec.credentialsSecretRef.
	"point": {User, 5, func(r *rand.Rand) []string { return []string{cust(r), pick(r, Secrets...)} }},
	// rotate: the default account's key is rotated (old key refused) and
	// every Secret of that account updated.
	"rotate": {User, 1, none},
	// defaultkey: the operator's default key is changed to the other
	// account's key at the same URL.
	"defaultkey": {User, 2, none},
	// restore cN: the object is lost without its finalizer running and
	// restored from a backup without status (a new UID).
	"restore": {User, 2, one},
	"swap":    {User, 2, two},
	// massdelete: every Customer is deleted at once.
	"massdelete": {User, 1, none},
	// drift, remotedelete: someone edits or deletes cN's record in
	// ScriptLock directly.
	"drift":        {User, 2, one},
	"remotedelete": {User, 2, one},
	// urlkey: the "other" Secret's url carries the key (https://KEY@host).
	"urlkey": {User, 1, none},

	// Intermediate states: the manager stops right after its next N-th
	// write to the API server (api) or to ScriptLock (sl), and a new one
	// starts.
	"crash": {Intermediate, 6, func(r *rand.Rand) []string { return []string{pick(r, "api", "sl"), strconv.Itoa(1 + r.IntN(3))} }},
	// Stale states: the next N cached reads of a Customer the operator has
	// written return the copy from before its last write; lagstart
	// restarts the manager on such a lagging view.
	"stale":    {Stale, 3, func(r *rand.Rand) []string { return []string{strconv.Itoa(1 + r.IntN(3))} }},
	"lagstart": {Stale, 2, none},
	// Unobserved states: the next N watch events are not delivered on
	// their own but coalesced with a later one (or a relist).
	"drop": {Unobserved, 3, func(r *rand.Rand) []string { return []string{strconv.Itoa(1 + r.IntN(3))} }},

	// ScriptLock faults.
	"fail": {Fault, 5, func(r *rand.Rand) []string {
		return []string{pick(r, "GET", "LIST", "POST", "PUT", "DELETE", "ANY"), pick(r, "429", "503", "500", "502"), pick(r, "0", "1", "2")}
	}},
	"lose":    {Fault, 3, func(r *rand.Rand) []string { return []string{pick(r, "500", "504", "drop", "409")} }},
	"odd":     {Fault, 2, func(r *rand.Rand) []string { return []string{pick(r, "200", "202", "204", "302")} }},
	"late":    {Fault, 2, none},
	"blip":    {Fault, 3, none},
	"vanish":  {Fault, 1, none},
	"del404":  {Fault, 2, none},
	"slow":    {Fault, 1, none},
	"silent":  {Fault, 1, none},
	"tidy":    {Fault, 1, none},
	"refuse":  {Fault, 1, one},
	"sweep":   {Time, 3, none},
	"nothing": {Time, 0, none},
}

// KindOf returns the kind of an op.
func KindOf(opName string) Kind { return ops[opName].kind }

// opNames lists ops in a fixed order, so that a seed always draws the same.
var opNames = func() []string {
	names := make([]string, 0, len(ops))
	for n := range ops {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}()

// Generate returns the history of seed: a couple of Customers applied, then
// n steps drawn by weight. The same seed always gives the same history.
func Generate(seed uint64, n int) History {
	// A seeded generator must replay exactly; nothing here is secret.
	r := rand.New(rand.NewPCG(seed, 0x5c819710c4)) //nolint:gosec // G404: see above.
	h := History{Seed: seed}
	for range 1 + r.IntN(3) {
		h.Steps = append(h.Steps, Step{Op: "apply", Args: ops["apply"].args(r)})
	}
	total := 0
	for _, name := range opNames {
		total += ops[name].weight
	}
	for len(h.Steps) < n {
		w := r.IntN(total)
		for _, name := range opNames {
			if w -= ops[name].weight; w < 0 {
				h.Steps = append(h.Steps, Step{Op: name, Args: ops[name].args(r)})
				break
			}
		}
	}
	return h
}

// Package explore holds the pure parts of the fault explorer: the seeded
// generator of user histories and perturbations, the ledger of which
// Customer may touch which ScriptLock record, the invariants written from
// the README's contract, the shrinker, and the list of known violations.
//
// Nothing here talks to a cluster or to ScriptLock: test/explore drives the
// real reconciler against a real kube-apiserver and the simulator, turns
// what it sees into the views of this package, and asks it what was broken.
// Keeping the rules here, as plain data in and violations out, lets them be
// read against the README and unit-tested on their own.
package explore

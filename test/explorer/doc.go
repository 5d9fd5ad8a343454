// Package explorer drives the real CustomerReconciler through generated
// user histories against a real kube-apiserver + etcd (envtest) and the
// ScriptLock simulator over real HTTP, perturbs what it sees (a crash
// right after one of its writes, stale reads, coalesced watch events,
// ScriptLock faults), and checks the invariants of internal/explore after
// every step and at the end. See docs/explorer.md.
//
// `go test ./test/explorer` runs a small fixed set of seeds and the saved
// regression histories; `make explore` runs many more (EXPLORE_SEEDS,
// EXPLORE_SEED, EXPLORE_HISTORY, EXPLORE_SAVE).
package explorer

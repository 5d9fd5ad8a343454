package explore

// Known is an open defect the explorer finds, filed and not fixed yet: the
// fixed-seed run of `make test` reports it and does not fail on it, while
// any other kind of violation fails it. Remove an entry when its fix lands.
type Known struct {
	Kind string
	// Issue names the issue item that describes it.
	Issue string
	// Seed is a seed of `make explore EXPLORE_SEED=n` that shows it.
	Seed uint64
}

// KnownViolations are the open defects, by kind.
var KnownViolations = []Known{}

// IsKnown returns the known defect of kind, if it is one.
func IsKnown(kind string) (Known, bool) {
	for _, k := range KnownViolations {
		if k.Kind == kind {
			return k, true
		}
	}
	return Known{}, false
}

package explore

// Snapshot is what the explorer sees at one moment: every Customer, every
// record of every account, and the Events so far.
type Snapshot struct {
	Customers []CustomerView
	Records   map[RecordRef]Record
	Events    []Event
}

// Event is a Kubernetes Event about a Customer.
type Event struct {
	UID, Name, Reason, Note string
}

// Live returns the Customers of s by UID.
func (s Snapshot) Live() map[string]CustomerView {
	out := make(map[string]CustomerView, len(s.Customers))
	for _, c := range s.Customers {
		out[c.UID] = c
	}
	return out
}

// Write is one PUT or DELETE the operator sent to ScriptLock, with what the
// explorer saw at that moment.
type Write struct {
	Method string // PUT or DELETE
	Ref    RecordRef
	// Before is the record as it was just before the call, if it existed.
	Before Record
	Exists bool
	// Sent is the form of a PUT.
	Sent Record
}
